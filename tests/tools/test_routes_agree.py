"""One score on every route: a trajectory and the text of the same rollout score identically.

Routes: the trajectory route (``score_trajectory``: local engine, evaluation, ``POST /score
{"trajectory"}``, verl with the trajectory in ``extra_info``) and the text route
(``score_response``, ``POST /score {"response"}``, verl's ``compute_score`` with only
``solution_str``), the latter both with chat-template markers and as verl decodes without.
"""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards import RewardScorer, score_response, score_trajectory
from deepeyes.rewards.payload import parse_request
from deepeyes.rewards.scoring import compute_score
from deepeyes.tool_manager import ToolManager

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
]


def random_turns(rng: random.Random) -> list[str]:
    turns = []
    for _ in range(rng.randint(1, 5)):
        thought = wire.think(rng.choice(["look", "<answer>7</answer> maybe", "count"])) if rng.random() < 0.8 else ""
        turns.append(thought + rng.choice(FRAGMENTS))
    return turns


ISSUE_CASES = [
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


def run(manager: ToolManager, turns: list[str], truth: str):
    loop = AgentLoop(manager, AgentConfig(max_turns=len(turns)))
    return loop.run(ScriptedPolicy(turns), [IMAGE], "How many?", ground_truth=truth)


def assert_routes_agree(trajectory, truth: str) -> None:
    expected = score_trajectory(trajectory)
    scorer = RewardScorer()
    results = {
        "trajectory dict": score_trajectory(trajectory.to_dict()),
        "verl extra_info trajectory": compute_score("d", "", truth, extra_info={"trajectory": trajectory.to_dict()}),
        "POST /score trajectory": scorer.score(parse_request({"trajectory": trajectory.to_dict()})),
    }
    for markers in (True, False):
        text = wire.render_response(trajectory, chat_markers=markers)
        results[f"score_response markers={markers}"] = score_response(text, truth)
        results[f"verl solution_str markers={markers}"] = compute_score("d", text, truth)
        results[f"POST /score response markers={markers}"] = scorer.score(parse_request({"response": text, "ground_truth": truth}))
    for route, result in results.items():
        assert {k: result[k] for k in KEYS} == {k: expected[k] for k in KEYS}, (route, trajectory.turns)
        if "details" in result:
            assert result["details"]["tool_calls"] == expected["details"]["tool_calls"], route
            assert result["details"]["format_violations"] == expected["details"]["format_violations"], route


@pytest.mark.parametrize("turns", ISSUE_CASES, ids=["unclosed_answer", "tool_call_then_answer", "two_zooms", "empty_answer"])
def test_issue_cases_score_the_same_on_every_route(zoom_manager: ToolManager, turns: list[str]) -> None:
    truth = "330 m" if "330" in turns[-1] else "42"
    assert_routes_agree(run(zoom_manager, turns, truth), truth)


CODE_CASES = [
    [wire.think("compute") + wire.code_action("print(6 * 7)"), "<think>count</think><answer>42<|im_end|>"],
    [wire.think("compute") + wire.code_action("print(6 * 7)") + wire.code_action("print(7 * 6)"), wire.answer_action("42")],
    [wire.think("compute") + wire.code_action("1 / 0"), wire.think("retry") + wire.code_action("print(42)"), wire.answer_action("42")],
    [wire.code_action("print(1)"), wire.code_action("print(1)"), wire.answer_action("42") + "\nDone."],
]


@pytest.mark.parametrize("turns", CODE_CASES, ids=["code_then_unclosed_answer", "two_code_blocks", "failed_then_ok", "repeat_then_text_after"])
def test_code_cases_score_the_same_on_every_route(code_manager: ToolManager, turns: list[str]) -> None:
    trajectory = run(code_manager, turns, "42")
    assert trajectory.tool_calls.code >= 1
    assert_routes_agree(trajectory, "42")


def test_two_code_blocks_run_and_count_once(code_manager: ToolManager) -> None:
    trajectory = run(code_manager, CODE_CASES[1], "42")
    assert trajectory.tool_calls.code == 1 and "42" in trajectory.turns[0].observation.text
    text = score_response(wire.render_response(trajectory, chat_markers=False), "42")
    assert text["details"]["tool_calls"]["code"] == 1
    assert [v["kind"] for v in text["details"]["format_violations"]] == ["multiple_actions"]


def test_issue_case_values() -> None:
    # Unclosed final answer: accepted, with one format violation, on the text route alone too.
    result = score_response("<think>count</think><answer>42<|im_end|>", "42")
    assert (result["accuracy"], result["format"]) == (1.0, 0.5)
    assert [v["kind"] for v in result["details"]["format_violations"]] == ["unbalanced_answer"]
    # Two actions in one turn: the first (a search that never ran: no observation) is the
    # action; no answer, no tool credit, and the violation is kept.
    two = score_response(ISSUE_CASES[1][0], "330 m")
    assert two["details"]["answered"] is False and two["details"]["tool_calls"]["search"] == 0
    assert [v["kind"] for v in two["details"]["format_violations"]] == ["multiple_actions"]
    assert two["details"]["tool_credit"] == 0.0
    # Empty answer: invalid on the text route, as in the agent loop.
    empty = score_response("<answer></answer>", "42", stop_reason=None)
    assert empty["details"]["answered"] is False and empty["details"]["tool_calls"]["invalid"] == 1


def test_text_only_answers_score_like_the_agent_run(zoom_manager: ToolManager) -> None:
    for text in ("<think>count</think><answer>42<|im_end|>", wire.answer_action("42") + " done", "<answer></answer>"):
        trajectory = run(zoom_manager, [text], "42")
        assert {k: score_response(text, "42")[k] for k in KEYS} == {k: score_trajectory(trajectory)[k] for k in KEYS}


def test_generated_rollouts_score_the_same_on_every_route(zoom_manager: ToolManager) -> None:
    rng = random.Random(11)
    seen_violations: set[str] = set()
    seen_statuses: set[str] = set()
    for _ in range(60):
        trajectory = run(zoom_manager, random_turns(rng), rng.choice(["42", "41"]))
        assert_routes_agree(trajectory, trajectory.ground_truth)
        seen_violations |= {v["kind"] for v in score_trajectory(trajectory)["details"]["format_violations"]}
        seen_statuses |= {t.observation.status for t in trajectory.turns if t.observation}
    # The generator really covered the policy's cases.
    assert {"multiple_actions", "text_after_action", "unbalanced_answer", "unbalanced_think", "no_action"} <= seen_violations
    assert {"success", "error", "disabled", "budget_exceeded"} <= seen_statuses
    assert json.dumps(sorted(seen_violations))
