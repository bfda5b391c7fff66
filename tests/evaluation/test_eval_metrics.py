"""Metrics from a scripted run on a tiny dataset equal hand-computed goldens."""

from __future__ import annotations

import json

import pytest

from deepeyes import wire
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import load_dataset
from deepeyes.evaluation.metrics import SampleOutcome, aggregate
from deepeyes.evaluation.runner import evaluate
from deepeyes.evaluation.templates import build_question
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.trajectory import TOOL_KINDS

ROWS = [
    {"index": 1, "question": "What is 2 plus 3?", "answer": "5", "category": "alpha"},
    {"index": 2, "question": "Which colour is it?", "answer": "B", "category": "alpha", "A": "red", "B": "blue"},
    {"index": 3, "question": "How many dots?", "answer": "7", "category": "beta", "A": "", "B": ""},
    {"index": 4, "question": "Which animal is it?", "answer": "cat", "category": "beta", "A": "", "B": ""},
]
SCRIPTS = {
    # alpha: a successful code call, then the right answer → correct, 2 turns.
    1: [wire.think("compute") + wire.code_action("print(2 + 3)"), wire.think("done") + "<answer>5</answer>"],
    # alpha: answers directly, wrongly → 1 turn, no call.
    2: [wire.think("looks red") + "<answer>A</answer>"],
    # beta: a failing code call, an unparseable call, a call to the disabled search tool, then the right answer.
    3: [
        wire.code_action("1 / 0"),
        "<tool_call>\n{not json\n</tool_call>",
        wire.text_search_action("dots"),
        "<answer>7</answer>",
    ],
    # beta: never uses the wire format → 4 invalid turns, stops at max_turns, no answer.
    4: ["It is a cat, I think."] * 4,
}


@pytest.fixture()
def scripted_run(make_tsv, code_tool_manager, tmp_path):
    path = make_tsv("Tiny", ROWS)
    samples = load_dataset("Tiny", path.parent)
    policy = ScriptedPolicy({build_question(s): SCRIPTS[int(s.index)] for s in samples})
    config = EvalConfig(
        datasets=["Tiny"], lmudata=str(path.parent), output_dir=str(tmp_path / "out"),
        max_turns=4, batch_size=1, show_progress=False, report=False,
    )
    return evaluate(config, policy=policy, tool_manager=code_tool_manager), tmp_path / "out"


def test_metrics_match_hand_computed_goldens(scripted_run):
    results, out = scripted_run
    overall = results["datasets"]["Tiny"]["overall"]
    # 11 turns: 2 + 1 + 4 + 4. Parsed actions: code+answer, answer, code+search+answer → 6.
    # Attempted calls: sample 1 → 1, sample 3 → 3 (code, bad JSON, search); only the first code call executed.
    expected = {
        "n": 4,
        "accuracy": 0.5,
        "task_completion": 0.75,
        "tool_call_rate": {tool: {"code": 0.5, "search": 0.25}.get(tool, 0.0) for tool in TOOL_KINDS},
        "any_tool_call_rate": 0.5,
        "tool_calls_per_sample": {tool: {"code": 0.5, "search": 0.25}.get(tool, 0.0) for tool in TOOL_KINDS},
        "tool_calls_attempted": 4,
        "tool_call_validity": 0.25,
        "tool_call_parse_rate": 0.75,
        "valid_action_share": 6 / 11,
        "mean_turns": 2.75,
        "errors": 0,
    }
    trace = (out / "trajectories" / "Tiny.jsonl").read_text()
    assert {key: overall[key] for key in expected} == expected, trace
    alpha, beta = results["datasets"]["Tiny"]["categories"]["alpha"], results["datasets"]["Tiny"]["categories"]["beta"]
    assert (alpha["n"], alpha["accuracy"], alpha["task_completion"], alpha["tool_call_validity"], alpha["mean_turns"]) == (2, 0.5, 1.0, 1.0, 1.5)
    assert (beta["accuracy"], beta["task_completion"], beta["tool_call_validity"], beta["mean_turns"]) == (0.5, 0.5, 0.0, 4.0)
    assert beta["tool_call_parse_rate"] == pytest.approx(2 / 3) and beta["valid_action_share"] == pytest.approx(3 / 8)
    assert results["overall"]["accuracy"] == 0.5  # one dataset: overall == the dataset's

    on_disk = json.loads((out / "eval_results.json").read_text())
    assert on_disk["datasets"]["Tiny"]["overall"]["accuracy"] == 0.5
    records = [json.loads(line) for line in (out / "trajectories" / "Tiny.jsonl").read_text().splitlines()]
    by_index = {r["metadata"]["index"]: r for r in records}
    assert by_index["1"]["turns"][0]["observation"]["text"].startswith("Code execution result:\nstdout:\n```\n5")
    assert by_index["3"]["turns"][2]["observation"]["status"] == "disabled"
    assert by_index["4"]["stop_reason"] == "max_turns" and by_index["4"]["final_answer"] is None
    assert [by_index[i]["reward"]["accuracy"] for i in "1234"] == [1.0, 0.0, 1.0, 0.0]


def test_latency_mean_and_p95():
    def sample(latency: float) -> SampleOutcome:
        calls = {tool: 0 for tool in TOOL_KINDS}
        return SampleOutcome("c", 1.0, 1.0, True, latency, 1, calls, 0, 0, 0, 1, False)

    block = aggregate([sample(x) for x in (1.0, 2.0, 3.0, 4.0, 10.0)])
    # p95 by linear interpolation: rank 0.95 × 4 = 3.8 → 4 + 0.8 × (10 − 4) = 8.8.
    assert block["latency_mean_s"] == pytest.approx(4.0) and block["latency_p95_s"] == pytest.approx(8.8)
    assert block["tool_call_validity"] is None and block["tool_call_parse_rate"] is None
