"""Format violations, tool-call accounting and the weighted sum, on full response texts."""

from __future__ import annotations

import json

import pytest

from deepeyes import wire
from deepeyes.rewards import RewardConfig, ToolPenalties, score_response
from deepeyes.trajectory import ToolCallCounts
from deepeyes.wire import split_response, trajectory_from_response


def derive_tool_stats(response: str) -> dict[str, int]:
    return trajectory_from_response(response).tool_calls.to_dict()


def violations(result: dict) -> list[str]:
    return [v["kind"] for v in result["details"]["format_violations"]]


def code_turn(code: str, stdout: str = "", stderr: str = "") -> str:
    """A code action and the observation the sandbox returns for it."""
    return wire.think("use code") + wire.code_action(code) + wire.code_observation(stdout, stderr, 0)


def search_turn(query: str, body: str = "1. [t](l)\nsnippet") -> str:
    return wire.think("search") + wire.text_search_action(query) + wire.tool_response(body)


def final(answer: str) -> str:
    return wire.think("done") + wire.answer_action(answer)


# ---- format ---------------------------------------------------------------------------

def test_clean_response_has_full_format_and_completion() -> None:
    result = score_response(final("4"), "4")
    assert (result["format"], result["task_completion"], violations(result)) == (1.0, 1.0, [])


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>no close <answer>4</answer>", ["unbalanced_think"]),
        ("</think>backwards<think><answer>4</answer>", ["unbalanced_think"]),
        ("<think>a<think>b</think></think><answer>4</answer>", ["unbalanced_think"]),
        ("<think>x</think><answer>3</answer><answer>4</answer>", ["multiple_actions"]),
        ("<think>x</think><answer>4</answer> and more words", ["text_after_action"]),
        ("<think>x</think><answer>4", ["unbalanced_answer"]),
    ],
)
def test_format_violations_are_named(response: str, expected: list[str]) -> None:
    result = score_response(response, "4")
    assert violations(result) == expected
    assert result["format"] == pytest.approx(1.0 - 0.5 * len(expected))


def test_turn_without_action_loses_completion() -> None:
    result = score_response("<think>I am not sure</think>", "4")
    assert violations(result) == ["no_action"]
    assert result["details"]["answered"] is False
    assert result["task_completion"] == 0.0
    # The agent loop answers a turn without action with an error observation and counts it
    # invalid; the text route counts it the same way, so the invalid-call penalty applies.
    assert result["details"]["tool_calls"]["invalid"] == 1
    assert result["score"] == pytest.approx(-0.3 * RewardConfig().penalties.invalid)


def test_tags_mentioned_while_thinking_are_not_actions() -> None:
    response = "<think>I could write <code> or give an <answer> directly</think><answer>4</answer>"
    assert violations(score_response(response, "4")) == []


def test_truncated_tool_call_is_unbalanced_and_unanswered() -> None:
    response = code_turn("x = 1", "", "") + "<think>more</think><code>\n```python\nprint(x"
    result = score_response(response, "1")
    assert violations(result) == ["unbalanced_code"]
    assert result["task_completion"] == 0.0


def test_overlong_answer_is_capped_against_judge_hacking() -> None:
    # The right answer buried in a long list of candidates earns nothing.
    padded = "The answer could be 1, 2, 3, 4, 5 or maybe " + " or ".join(str(i) for i in range(200))
    result = score_response(final(padded), "4")
    assert result["accuracy"] == 0.0
    assert result["details"]["accuracy_method"] == "too_long"
    assert "answer_too_long" in violations(result)
    assert result["format"] == 0.5
    assert result["score"] == 0.0  # wrong: no completion credit either


def test_length_cap_grows_with_long_ground_truths() -> None:
    long_truth = "word " * 80  # 399 characters once stripped: the cap becomes 4 × 399
    result = score_response(final(long_truth), long_truth)
    assert result["details"]["answer_length_cap"] == 4 * 399
    assert result["accuracy"] == 1.0


def test_chat_template_markers_split_turns_by_role() -> None:
    response = (
        "<think>crop</think>" + wire.code_action("print(2+2)") + "<|im_end|>\n"
        "<|im_start|>user\n" + wire.code_observation("4", "", 0) + "<|im_end|>\n"
        "<|im_start|>assistant\n" + final("4") + "<|im_end|>"
    )
    assert len(split_response(response)) == 2
    result = score_response(response, "4")
    assert violations(result) == []
    assert result["details"]["tool_calls"]["code"] == 1
    assert result["score"] == 1.0


def test_verl_decoded_multiturn_without_special_tokens() -> None:
    # verl decodes with skip_special_tokens: <|im_start|>/<|im_end|> vanish, role words stay.
    response = (
        wire.think("search") + wire.text_search_action("tallest tower")
        + "\nuser\n" + wire.tool_response("1. [Burj](l)\n828 m") + "\nassistant\n"
        + final("828 m")
    )
    result = score_response(response, "828")
    assert len(split_response(response)) == 2
    assert violations(result) == []
    assert result["details"]["tool_calls"]["search"] == 1
    assert result["score"] == 1.0


def test_first_answer_tag_is_the_answer_and_an_open_one_counts() -> None:
    assert trajectory_from_response("<answer>3</answer> text <answer> 4 </answer>").final_answer == "3"
    assert trajectory_from_response("<answer>unfinished").final_answer == "unfinished"


# ---- tool efficiency --------------------------------------------------------------------

def test_correct_answer_with_useful_tool_gets_full_score() -> None:
    result = score_response(code_turn("print(2+2)", "4") + final("4"), "4")
    assert result["tool_efficiency"] == 1.0
    assert result["details"]["tool_credit"] == 1.0
    assert result["score"] == 1.0


def test_tool_credit_only_when_correct() -> None:
    result = score_response(code_turn("print(2+3)", "5") + final("5"), "4")
    assert result["tool_efficiency"] == 0.0
    assert result["task_completion"] == 0.0
    assert result["score"] == 0.0


def test_direct_answer_credit_is_configurable() -> None:
    assert score_response(final("4"), "4")["score"] == pytest.approx(1.0)
    literal_seed = RewardConfig(direct_answer_credit=0.0)
    assert score_response(final("4"), "4", config=literal_seed)["score"] == pytest.approx(0.7)
    half = RewardConfig(direct_answer_credit=0.5)
    assert score_response(final("4"), "4", config=half)["score"] == pytest.approx(0.85)


def test_repeated_identical_calls_are_penalised() -> None:
    response = code_turn("print(2+2)", "4") + code_turn("print(2+2)", "4") + final("4")
    result = score_response(response, "4")
    assert result["details"]["tool_calls"]["repeated"] == 1
    assert result["details"]["tool_penalty_breakdown"]["repeated"] == pytest.approx(0.2)
    assert result["tool_efficiency"] == pytest.approx(0.8)


def test_invalid_tool_calls_are_penalised_even_when_wrong() -> None:
    bad_json = wire.think("x") + "<tool_call>\n{not json}\n</tool_call>" + wire.tool_response("Error (parse): bad JSON")
    unknown = wire.think("x") + '<tool_call>\n{"name": "browse", "arguments": {}}\n</tool_call>' + wire.error_response("invalid call", "unknown")
    result = score_response(bad_json + unknown + final("5"), "4")
    assert result["details"]["tool_calls"]["invalid"] == 2
    assert result["tool_efficiency"] == pytest.approx(-0.5)
    assert result["score"] == pytest.approx(-0.3 * 0.5)


def test_failed_call_gives_no_credit_and_a_penalty() -> None:
    response = code_turn("1/0", "", "ZeroDivisionError: division by zero") + final("4")
    result = score_response(response, "4")
    assert result["details"]["tool_calls"] == ToolCallCounts(code=1, failed=1).to_dict()
    assert result["details"]["tool_credit"] == 0.0
    assert result["tool_efficiency"] == pytest.approx(-0.1)


def test_search_errors_and_image_search_are_counted() -> None:
    response = (
        wire.think("search") + wire.text_search_action("capital of France") + wire.error_response("timeout", "search timed out")
        + wire.think("look") + wire.image_search_action() + wire.tool_response(wire.image_search_body(["Eiffel"]))
        + final("Paris")
    )
    stats = derive_tool_stats(response)
    assert stats == ToolCallCounts(search=1, image_search=1, failed=1).to_dict()
    assert score_response(response, "Paris")["tool_efficiency"] == pytest.approx(1.0 - 0.1)


def test_excess_calls_beyond_the_limit_are_penalised() -> None:
    stats = {"code": 8, "search": 0, "image_search": 0, "invalid": 0, "failed": 0, "repeated": 0}
    result = score_response(final("4"), "4", tool_stats=stats)
    assert result["details"]["tool_penalty_breakdown"]["excess"] == pytest.approx(0.2)
    assert result["tool_efficiency"] == pytest.approx(0.8)


def test_given_tool_stats_override_the_text() -> None:
    response = code_turn("print(4)", "4") + final("4")
    result = score_response(response, "4", tool_stats={"code": 1, "invalid": 2})
    assert result["details"]["tool_stats_source"] == "given"
    assert result["tool_efficiency"] == pytest.approx(0.5)


def test_tool_efficiency_is_clipped_at_minus_one() -> None:
    config = RewardConfig(penalties=ToolPenalties(invalid=1.0))
    result = score_response(final("4"), "4", tool_stats={"invalid": 5}, config=config)
    assert result["tool_efficiency"] == -1.0


def test_weights_are_configurable_and_reported() -> None:
    config = RewardConfig(weights=[0.0, 0.0, 1.0])
    result = score_response(final("5"), "4", config=config)
    assert result["score"] == 0.0
    assert result["details"]["weights"] == {"task_completion": 0.0, "tool_efficiency": 0.0, "accuracy": 1.0}
    assert score_response(final("4"), "4", config=config)["score"] == 1.0


def test_stop_at_turn_limit_is_not_completion() -> None:
    result = score_response(final("4"), "4", stop_reason="max_turns")
    assert result["task_completion"] == 0.0
    assert result["accuracy"] == 1.0


def test_search_call_identity_uses_arguments() -> None:
    response = search_turn("a") + search_turn("b") + search_turn("a")
    assert derive_tool_stats(response) == ToolCallCounts(search=3, repeated=1).to_dict()


def test_search_without_query_is_invalid() -> None:
    call = json.dumps({"name": "search", "arguments": {}})
    assert derive_tool_stats(f"<tool_call>\n{call}\n</tool_call>")["invalid"] == 1
