"""One score on every route: a trajectory and the text of the same rollout score identically.

Routes: the trajectory route (``score_trajectory``: local engine, evaluation, ``POST /score
{"trajectory"}``, verl with the trajectory in ``extra_info``) and the text route
(``score_response``, ``POST /score {"response"}``, verl's ``compute_score`` with only
``solution_str``), the latter with chat-template markers, as verl decodes without them, and
given the whole conversation (system prompt, question, every turn) as the chat template
renders it. The violations the agent loop records at generation time are exactly those the
text route finds: both come from one parse (``wire.parse_turn``) of the same turn text.
"""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, Rollout
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards import RewardScorer, score_response, score_trajectory
from deepeyes.rewards.payload import parse_request
from deepeyes.rewards.scoring import compute_score
from deepeyes.tool_manager import ToolManager
from deepeyes.wire.parse import TURN_VIOLATIONS

IMAGE = Image.new("RGB", (120, 90), (10, 200, 30))
KEYS = ("score", "accuracy", "format", "tool_efficiency", "task_completion")


def zoom(box: list[int], label: str = "") -> str:
    return wire.tool_call_action("image_zoom_in_tool", {"bbox_2d": box, "label": label})


#: Turn fragments the generator draws from: clean actions, every violation, every kind of failure.
FRAGMENTS = [
    wire.answer_action("42"),
    wire.answer_action("41"),
    "<answer>42" + wire.IM_END,
    "<answer></answer>",
    "<answer>  </answer>",
    zoom([0, 0, 60, 45], "corner"),
    zoom([0, 0, 60, 45], "corner"),  # drawn twice: a repeated call
    zoom([500, 500, 600, 600]),  # outside the image: the call fails
    wire.tool_call_action("image_zoom_in_tool", {"bbox_2d": [3, 3]}),
    wire.code_action("print(6 * 7)"),  # refused: code is disabled in this manager
    wire.text_search_action("meaning of life"),  # refused: search is disabled
    "<tool_call>\n{not json}\n</tool_call>",
    wire.tool_call_action("calculator", {"x": 1}),
    "I think the answer is 42.",
    zoom([10, 10, 50, 50]) + "\n" + wire.answer_action("42"),  # two actions: the call runs, the answer does not count
    wire.answer_action("42") + " and that is final",
    "<think>unclosed " + wire.answer_action("42"),
    "</answer>" + wire.answer_action("42"),
    "<code>\n```python\nprint(1)\n",  # unclosed call
    # Trailing content after an end-of-turn marker is not part of the turn.
    wire.answer_action("42") + wire.IM_END + "trailing",
    wire.answer_action("41") + wire.END_OF_TEXT + " and more",
    zoom([0, 0, 60, 45], "corner") + wire.IM_END + "\nthen " + wire.answer_action("42"),
    "<answer>42" + wire.IM_END + "</answer> later",
    wire.IM_END + "nothing before the end " + wire.answer_action("42"),
    # Answers inside thinking are thought, not answers.
    "<think>the answer is <answer>42</answer></think>",
    "<think>not <answer>41</answer></think>" + wire.answer_action("42"),
    "<think><answer>42</answer>",  # unclosed thinking hides nothing
    "<think>a</think><think>b <answer>41</answer></think> " + wire.answer_action("42") + wire.IM_END + "<answer>41</answer>",
]


def random_turns(rng: random.Random) -> list[str]:
    turns = []
    for _ in range(rng.randint(1, 6)):
        thought = wire.think(rng.choice(["look", "<answer>7</answer> maybe", "count"])) if rng.random() < 0.8 else ""
        turns.append(thought + rng.choice(FRAGMENTS))
    return turns


ISSUE_CASES = [
    ["<think>a</think><answer>42</answer><|im_end|>trailing"],
    ["<think>count</think><answer>42<|im_end|>"],
    [
        (
            '<think>need facts</think>\n<tool_call>\n{"name": "search", "arguments": {"query": "Eiffel tower height"}}\n'
            "</tool_call>\n<answer>330 m</answer>"
        ),
        wire.answer_action("330 m"),
    ],
    [wire.think("crop") + zoom([0, 0, 60, 45]) + zoom([60, 45, 120, 90]), wire.answer_action("42")],
    ["<think>x</think><answer></answer>", wire.answer_action("42")],
]


@pytest.fixture(scope="module")
def chat_template(tiny_model_dir):
    """The whole conversation as the chat template renders it (the tiny model's is Qwen2.5-VL's)."""
    from transformers import AutoTokenizer

    from deepeyes.policies.hf import to_hf_messages

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return lambda messages: tokenizer.apply_chat_template(to_hf_messages(messages), tokenize=False)


def rollout(manager: ToolManager, turns: list[str], truth: str) -> Rollout:
    loop = AgentLoop(manager, AgentConfig(max_turns=len(turns)))
    return loop.rollout(ScriptedPolicy(turns), AgentRequest(question="How many?", images=[IMAGE], ground_truth=truth))


def run(manager: ToolManager, turns: list[str], truth: str):
    return rollout(manager, turns, truth).trajectory


def recorded_violations(trajectory) -> list[tuple[int, str]]:
    return [(turn.index, kind) for turn in trajectory.turns for kind in turn.violations]


def assert_routes_agree(trajectory, truth: str, conversation: str | None = None) -> None:
    expected = score_trajectory(trajectory)
    # What the loop recorded at generation time is what the reward reports.
    assert [(v["turn"], v["kind"]) for v in expected["details"]["format_violations"] if v["kind"] != "answer_too_long"] == recorded_violations(trajectory)
    scorer = RewardScorer()
    results = {
        "trajectory dict": score_trajectory(trajectory.to_dict()),
        "verl extra_info trajectory": compute_score("d", "", truth, extra_info={"trajectory": trajectory.to_dict()}),
        "POST /score trajectory": scorer.score(parse_request({"trajectory": trajectory.to_dict()})),
    }
    texts = {f"markers={markers}": wire.render_response(trajectory, chat_markers=markers) for markers in (True, False)}
    if conversation is not None:
        texts["whole conversation"] = conversation
    for name, text in texts.items():
        rebuilt = wire.trajectory_from_response(text)
        assert recorded_violations(rebuilt) == recorded_violations(trajectory), (name, text)
        assert [t.action for t in rebuilt.turns] == [t.action for t in trajectory.turns], (name, text)
        results[f"score_response {name}"] = score_response(text, truth)
        results[f"verl solution_str {name}"] = compute_score("d", text, truth)
        results[f"POST /score response {name}"] = scorer.score(parse_request({"response": text, "ground_truth": truth}))
    for route, result in results.items():
        assert {k: result[k] for k in KEYS} == {k: expected[k] for k in KEYS}, (route, trajectory.turns)
        if "details" in result:
            assert result["details"]["tool_calls"] == expected["details"]["tool_calls"], route
            assert result["details"]["format_violations"] == expected["details"]["format_violations"], route


@pytest.mark.parametrize(
    "turns", ISSUE_CASES, ids=["trailing_after_end_of_turn", "unclosed_answer", "tool_call_then_answer", "two_zooms", "empty_answer"]
)
def test_issue_cases_score_the_same_on_every_route(zoom_manager: ToolManager, chat_template, turns: list[str]) -> None:
    truth = "330 m" if "330" in turns[-1] else "42"
    done = rollout(zoom_manager, turns, truth)
    assert_routes_agree(done.trajectory, truth, chat_template(done.messages))


CODE_CASES = [
    [wire.think("compute") + wire.code_action("print(6 * 7)"), "<think>count</think><answer>42<|im_end|>"],
    [wire.think("compute") + wire.code_action("print(6 * 7)") + wire.code_action("print(7 * 6)"), wire.answer_action("42")],
    [wire.think("compute") + wire.code_action("1 / 0"), wire.think("retry") + wire.code_action("print(42)"), wire.answer_action("42")],
    [wire.code_action("print(1)"), wire.code_action("print(1)"), wire.answer_action("42") + "\nDone."],
]


@pytest.mark.parametrize("turns", CODE_CASES, ids=["code_then_unclosed_answer", "two_code_blocks", "failed_then_ok", "repeat_then_text_after"])
def test_code_cases_score_the_same_on_every_route(code_manager: ToolManager, chat_template, turns: list[str]) -> None:
    done = rollout(code_manager, turns, "42")
    assert done.trajectory.tool_calls.code >= 1
    assert_routes_agree(done.trajectory, "42", chat_template(done.messages))


def test_two_code_blocks_run_and_count_once(code_manager: ToolManager) -> None:
    trajectory = run(code_manager, CODE_CASES[1], "42")
    assert trajectory.tool_calls.code == 1 and "42" in trajectory.turns[0].observation.text
    text = score_response(wire.render_response(trajectory, chat_markers=False), "42")
    assert text["details"]["tool_calls"]["code"] == 1
    assert [v["kind"] for v in text["details"]["format_violations"]] == ["multiple_actions"]


def test_issue_case_values() -> None:
    # Issue 29: what follows the end of turn is not part of it, on the text route alone too.
    trailing = score_response(ISSUE_CASES[0][0], "42")
    assert (trailing["accuracy"], trailing["format"], trailing["details"]["format_violations"]) == (1.0, 1.0, [])
    # Unclosed final answer: accepted, with one format violation, on the text route alone too.
    result = score_response("<think>count</think><answer>42<|im_end|>", "42")
    assert (result["accuracy"], result["format"]) == (1.0, 0.5)
    assert [v["kind"] for v in result["details"]["format_violations"]] == ["unbalanced_answer"]
    # Two actions in one turn: the first (a search that never ran: no observation) is the
    # action; no answer, no tool credit, and the violation is kept.
    two = score_response(ISSUE_CASES[2][0], "330 m")
    assert two["details"]["answered"] is False and two["details"]["tool_calls"]["search"] == 0
    assert [v["kind"] for v in two["details"]["format_violations"]] == ["multiple_actions"]
    assert two["details"]["tool_credit"] == 0.0
    # Empty answer: invalid on the text route, as in the agent loop.
    empty = score_response("<answer></answer>", "42", stop_reason=None)
    assert empty["details"]["answered"] is False and empty["details"]["tool_calls"]["invalid"] == 1


def test_text_only_answers_score_like_the_agent_run(zoom_manager: ToolManager) -> None:
    for text in (
        "<think>count</think><answer>42<|im_end|>",
        wire.answer_action("42") + " done",
        "<answer></answer>",
        wire.answer_action("42") + wire.IM_END + " done",
        "<think><answer>42</answer></think>",
    ):
        trajectory = run(zoom_manager, [text], "42")
        assert {k: score_response(text, "42")[k] for k in KEYS} == {k: score_trajectory(trajectory)[k] for k in KEYS}


def test_generated_rollouts_score_the_same_on_every_route(zoom_manager: ToolManager, chat_template) -> None:
    rng = random.Random(11)
    seen_violations: set[str] = set()
    seen_statuses: set[str] = set()
    seen_fragments: set[str] = set()
    multi_turn = 0
    # One long conversation first, so the call budget (2 in this manager) is always reached.
    over_budget = [zoom([0, 0, 60, 45]), zoom([10, 10, 60, 45]) + wire.IM_END + "x", zoom([0, 0, 30, 30]), wire.answer_action("42")]
    for turns in [over_budget, *(random_turns(rng) for _ in range(80))]:
        done = rollout(zoom_manager, turns, rng.choice(["42", "41"]))
        trajectory = done.trajectory
        assert_routes_agree(trajectory, trajectory.ground_truth, chat_template(done.messages))
        seen_violations |= {kind for turn in trajectory.turns for kind in turn.violations}
        seen_statuses |= {t.observation.status for t in trajectory.turns if t.observation}
        seen_fragments |= {f for t in trajectory.turns for f in FRAGMENTS if t.model_text.endswith(f)}
        multi_turn += len(trajectory.turns) > 1
    # The generator really covered the policy's cases.
    assert {"multiple_actions", "text_after_action", "unbalanced_answer", "unbalanced_think", "no_action"} <= seen_violations
    assert {"success", "error", "disabled", "budget_exceeded"} <= seen_statuses
    assert any(wire.IM_END in f or wire.END_OF_TEXT in f for f in seen_fragments), "trailing content after end of turn"
    assert any(f.startswith("<think>") and "<answer>" in f for f in seen_fragments), "answers inside thinking"
    assert multi_turn >= 10, "multi-turn conversations"
    assert json.dumps(sorted(seen_violations))


def _free_text(rng: random.Random) -> str:
    return rng.choice(["", " ", "\n", "so", "the box is clear.", "42", "<b>bold</b>", "think again", "```python\nx\n```"])


def _action(rng: random.Random) -> str:
    """One action block, well formed or not, as a model might write it."""
    return rng.choice(
        [
            lambda: wire.answer_action(rng.choice(["42", "41", " 42 ", "forty-two"])),
            lambda: wire.ANSWER_OPEN + rng.choice(["", "  ", "42"]),  # unclosed (or empty when closed below)
            lambda: wire.ANSWER_OPEN + rng.choice(["", " "]) + wire.ANSWER_CLOSE,
            lambda: zoom([rng.randint(0, 60), rng.randint(0, 45), rng.randint(61, 130), rng.randint(46, 100)]),
            lambda: wire.TOOL_CALL_OPEN + "\n{" + _free_text(rng) + "\n" + wire.TOOL_CALL_CLOSE,
            lambda: wire.text_search_action("capital of France"),
            lambda: wire.code_action("print(42)"),
            lambda: wire.CODE_OPEN + "\n```python\nprint(1)\n",  # unclosed
            lambda: rng.choice([wire.ANSWER_CLOSE, wire.TOOL_CALL_CLOSE, wire.CODE_CLOSE]),  # a stray closing tag
        ]
    )()


def _thought(rng: random.Random) -> str:
    """A ``<think>`` block: closed or not, with action blocks written inside it (which are thought)."""
    inside = "".join(rng.choice([_free_text(rng), _action(rng)]) for _ in range(rng.randint(0, 3)))
    return rng.choice([wire.THINK_OPEN + inside + wire.THINK_CLOSE] * 4 + [wire.THINK_OPEN + inside, wire.THINK_CLOSE + inside])


def generated_turn(rng: random.Random) -> str:
    """A turn built from the grammar's pieces: thoughts, text and actions in random order, and
    often an end-of-turn marker with more of the same after it (which is not part of the turn)."""
    pieces = [rng.choice([_thought, _free_text, _action])(rng) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.4:
        pieces.append(rng.choice(wire.END_OF_TURN))
        pieces += [rng.choice([_thought, _free_text, _action])(rng) for _ in range(rng.randint(1, 3))]
    return "".join(pieces)


def test_grammar_generated_turns_record_what_the_text_route_finds(zoom_manager: ToolManager, chat_template) -> None:
    """Turns generated from the grammar's pieces (not a fixed list): the violations the loop
    records at generation time are the text route's, on the rendered response with and
    without chat markers and on the whole conversation, and every score agrees."""
    rng = random.Random(29)
    seen: set[str] = set()
    trailing = thought_answers = multi_turn = 0
    for _ in range(120):
        turns = [generated_turn(rng) for _ in range(rng.randint(1, 5))]
        done = rollout(zoom_manager, turns, rng.choice(["42", "41"]))
        trajectory = done.trajectory
        assert_routes_agree(trajectory, trajectory.ground_truth, chat_template(done.messages))
        for turn in trajectory.turns:
            assert turn.violations == wire.parse_turn(turn.model_text).violations  # the record keeps the raw text
            seen.update(turn.violations)
            trailing += wire.trim_end_of_turn(turn.model_text).strip() != turn.model_text.strip()
            thought_answers += wire.ANSWER_OPEN in (wire.thinking(turn.model_text) or "")
        multi_turn += len(trajectory.turns) > 1
    assert set(TURN_VIOLATIONS) <= seen, sorted(set(TURN_VIOLATIONS) - seen)
    assert trailing >= 20 and thought_answers >= 20 and multi_turn >= 30, (trailing, thought_answers, multi_turn)


@pytest.mark.parametrize("blank", ["", " ", "\n"])
def test_a_blank_first_turn_stays_a_turn_on_the_text_route(zoom_manager: ToolManager, chat_template, blank: str) -> None:
    # Found by the generator above: verl's response opening with a blank turn and its
    # observation lost that turn (and its no_action violation and invalid call).
    done = rollout(zoom_manager, [blank, wire.answer_action("42")], "42")
    assert [turn.violations for turn in done.trajectory.turns] == [["no_action"], []]
    assert len(wire.trajectory_from_response(wire.render_response(done.trajectory)).turns) == 2
    assert_routes_agree(done.trajectory, "42", chat_template(done.messages))
