"""The LLM judge client against a stand-in OpenAI-compatible server, and its fallbacks."""

from __future__ import annotations

import pytest

from deepeyes import wire
from deepeyes.rewards import JudgeConfig, RewardConfig, RewardScorer, score_response
from deepeyes.rewards.judge import JudgeUnavailable, LLMJudge, parse_verdict
from deepeyes.rewards.payload import request_from_response
from deepeyes.utils.processes import free_port


def judge_config(api_base: str, **overrides: object) -> RewardConfig:
    settings = {"enabled": True, "api_base": api_base, "timeout_s": 2.0, "max_retries": 0, **overrides}
    return RewardConfig(judge=JudgeConfig(**settings))  # type: ignore[arg-type]


def answered(answer: str) -> str:
    return wire.think("r") + wire.answer_action(answer)


def test_judge_accepts_what_rules_cannot(judge) -> None:
    result = score_response(answered("NYC"), "New York City", config=judge_config(judge.url), question="Which city?")
    assert result["accuracy"] == 1.0
    assert result["details"]["accuracy_method"] == "judge"
    assert result["details"]["judge_used"] is True
    assert result["details"]["judge_fallback"] is False
    assert judge.behaviour.requests == 1


def test_judge_rejects_a_wrong_answer(judge) -> None:
    result = score_response(answered("Boston"), "New York City", config=judge_config(judge.url))
    assert (result["accuracy"], result["details"]["accuracy_method"]) == (0.0, "judge")


def test_rules_decide_without_asking_the_judge(judge) -> None:
    config = judge_config(judge.url)
    assert score_response(answered("new york city"), "New York City", config=config)["accuracy"] == 1.0
    assert score_response(answered("5"), "4", config=config)["accuracy"] == 0.0  # numbers: rules only
    assert score_response(answered("C"), "B", config=config)["accuracy"] == 0.0  # letters: rules only
    assert judge.behaviour.requests == 0


def test_api_key_comes_from_the_named_environment_variable(judge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARD_TEST_JUDGE_KEY", "sk-test-123")
    score_response(answered("NYC"), "New York City", config=judge_config(judge.url, api_key_env="REWARD_TEST_JUDGE_KEY"))
    monkeypatch.delenv("REWARD_TEST_JUDGE_KEY")
    score_response(answered("NYC"), "New York City", config=judge_config(judge.url, api_key_env="REWARD_TEST_JUDGE_KEY"))
    assert judge.behaviour.authorization == ["Bearer sk-test-123", ""]


def test_judge_down_falls_back_to_rules_and_says_so() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = judge_config(dead)
    wrong = score_response(answered("NYC"), "New York City", config=config)
    assert wrong["accuracy"] == 0.0
    assert wrong["details"]["judge_fallback"] is True
    assert "unreachable" in wrong["details"]["judge_error"]
    assert wrong["details"]["accuracy_method"] == "text"
    right = score_response(answered("New York City"), "New York City", config=config)
    assert right["accuracy"] == 1.0
    assert right["details"]["judge_fallback"] is False


def test_judge_timeout_falls_back(judge) -> None:
    judge.behaviour.delay_s = 1.5
    result = score_response(answered("NYC"), "New York City", config=judge_config(judge.url, timeout_s=0.3))
    assert result["details"]["judge_fallback"] is True
    assert "timed out" in result["details"]["judge_error"]


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("http500", "HTTP 500"),
        ("garbage", "not a verdict"),
        ("not_completion", "not an OpenAI chat completion"),
        ("not_json", "not an OpenAI chat completion"),
    ],
)
def test_judge_errors_fall_back(judge, mode: str, error: str) -> None:
    judge.behaviour.mode = mode
    result = score_response(answered("NYC"), "New York City", config=judge_config(judge.url, max_retries=1))
    assert result["details"]["judge_fallback"] is True
    assert error in result["details"]["judge_error"]
    assert judge.behaviour.requests == 2  # the first try and one retry


def test_judge_client_returns_verdicts(judge) -> None:
    client = LLMJudge(JudgeConfig(enabled=True, api_base=judge.url))
    assert client.judge("Dog breed?", "golden retriever", "a golden retriever dog").correct is True
    assert client.judge("Dog breed?", "golden retriever", "poodle").correct is False


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("CORRECT", True),
        (" incorrect.\n", False),
        # decoration and labels (issue 25)
        ("**CORRECT**", True),
        ("Verdict: CORRECT", True),
        ('"CORRECT"', True),
        ("`CORRECT`.", True),
        ("**Verdict:** INCORRECT", False),
        ("Final verdict - correct!", True),
        # reasoning before the verdict, closed (or its opening tag left in the prompt)
        ("<think>The candidate says NYC, which is New York City.</think>\nCORRECT", True),
        ("<think>CORRECT? no.</think>\n\nINCORRECT", False),
        ("the reference says Paris\n</think>\nCORRECT", True),
        # a verdict line before or after an explanation
        ("CORRECT\nThe candidate names the same city.", True),
        ("The candidate names another city.\nINCORRECT", False),
        # negations are never correct
        ("NOT CORRECT", False),
        ("Verdict: **NOT CORRECT**", False),
        ("**INCORRECT**", False),
    ],
)
def test_verdict_parsing(reply: str, verdict: bool) -> None:
    assert parse_verdict(reply) is verdict


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "It is CORRECT, I believe",
        "<think>The answer looks CORRECT but",  # reasoning cut off before any verdict
        "CORRECT\nwait, no\nINCORRECT",  # first and last lines disagree
        "Correctness: high",
        "INCORRECTLY CORRECT",
    ],
)
def test_replies_without_one_verdict_are_no_verdict(reply: str) -> None:
    with pytest.raises(JudgeUnavailable):
        parse_verdict(reply)


@pytest.mark.parametrize(
    "template", ["**{verdict}**", "Verdict: {verdict}", "<think>Compare NYC with New York City.</think>\n{verdict}", '"{verdict}"']
)
def test_decorated_judge_replies_are_read_not_fallen_back(judge, template: str) -> None:
    """Issue 25: these replies fell back to the rules; the verdict inside is the verdict."""
    judge.behaviour.template = template
    config = judge_config(judge.url)
    right = score_response(answered("NYC"), "New York City", config=config)
    wrong = score_response(answered("Boston"), "New York City", config=config)
    assert (right["accuracy"], right["details"]["accuracy_method"], right["details"]["judge_fallback"]) == (1.0, "judge", False)
    assert (wrong["accuracy"], wrong["details"]["accuracy_method"], wrong["details"]["judge_fallback"]) == (0.0, "judge", False)


def test_not_correct_from_the_judge_is_wrong(judge) -> None:
    judge.behaviour.template = "NOT {verdict}"  # "NOT CORRECT" / "NOT INCORRECT"
    result = score_response(answered("NYC"), "New York City", config=judge_config(judge.url))
    assert result["accuracy"] == 0.0
    assert result["details"]["accuracy_method"] == "judge"


def test_batch_calls_the_judge_in_parallel(judge) -> None:
    judge.behaviour.delay_s = 0.3
    scorer = RewardScorer(judge_config(judge.url, max_concurrency=8))
    requests = [request_from_response(answered(a), "New York City") for a in ["NYC", "Boston"] * 4]
    results = scorer.score_batch(requests)
    assert [r["accuracy"] for r in results] == [1.0, 0.0] * 4
    assert judge.behaviour.requests == 8
    assert judge.behaviour.max_in_flight > 1
