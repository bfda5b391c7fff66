"""Counts of the streaming aggregation against hand-counted trajectories (conftest.five_trajectories)."""

from __future__ import annotations

import pytest
from conftest import CROP_CODE, NUMERIC_CODE, five_trajectories, trajectory, turn

from deepeyes.analysis.aggregate import AnalysisConfig, RunAggregator, required_tools
from deepeyes.analysis.codeops import CROP, NUMERIC


def _summary(records, step_metrics=None, **config):
    aggregator = RunAggregator(AnalysisConfig(**config))
    for record in records:
        aggregator.add(record)
    return aggregator.summary(step_metrics)


def test_tool_use_counts_overall_and_per_category():
    summary = _summary(five_trajectories())
    overall = summary["overall"]
    # Every registered tool is a column, used or not (the zoom tool is registered but unused here).
    assert summary["tools"] == ["code", "search", "image_search", "image_zoom_in_tool", "select_frames"]
    assert overall["n"] == 5
    assert overall["counts"] == {
        "tool_calls": 4, "calls": {"code": 3, "search": 1, "image_search": 0, "image_zoom_in_tool": 0, "select_frames": 0},
        "trajectories_using": {"code": 2, "search": 1, "image_search": 0, "image_zoom_in_tool": 0, "select_frames": 0},
        "failed": 1, "repeated": 1, "invalid": 1, "turns": 9,
    }
    assert overall["tool_use_rate"] == {"code": 2 / 5, "search": 1 / 5, "image_search": 0.0, "image_zoom_in_tool": 0.0, "select_frames": 0.0}
    assert overall["calls_per_trajectory"] == {"code": 3 / 5, "search": 1 / 5, "image_search": 0.0, "image_zoom_in_tool": 0.0, "select_frames": 0.0}
    assert overall["failure_rate"] == 1 / 4 and overall["repeat_rate"] == 1 / 4
    assert overall["invalid_rate"] == pytest.approx(1 / 9)
    assert overall["tool_failure_rate"] == {"code": pytest.approx(1 / 3), "search": 0.0, "image_search": None, "image_zoom_in_tool": None, "select_frames": None}
    assert overall["accuracy"] == pytest.approx(2 / 5) and overall["mean_turns"] == pytest.approx(9 / 5)
    chart, ocr = summary["categories"]["chart"], summary["categories"]["ocr"]
    assert (chart["n"], chart["tool_use_rate"]["code"], chart["failure_rate"]) == (2, 1.0, 1 / 3)
    assert (ocr["n"], ocr["tool_use_rate"]["search"], ocr["any_tool_rate"]) == (3, pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_code_operations_per_category():
    code = _summary(five_trajectories())["code_operations"]
    assert code["categories"]["chart"]["code_calls"] == 3
    assert code["categories"]["chart"]["primary"][CROP] == 1 and code["categories"]["chart"]["primary"][NUMERIC] == 2
    assert code["categories"]["chart"]["primary_share"][NUMERIC] == pytest.approx(2 / 3)
    assert code["categories"]["ocr"]["code_calls"] == 0 and code["categories"]["ocr"]["primary_share"][CROP] is None


def test_paths_and_transition_matrix():
    summary = _summary(five_trajectories())
    paths = {p["path"]: p["count"] for p in summary["paths"]["top"]}
    assert paths == {"code → answer": 1, "code×2 → answer": 1, "search → answer": 1, "answer": 1, "invalid → [max_turns]": 1}
    assert summary["paths"]["combinations"]["ocr"] == {"search": 1, "no tool": 2}
    matrix = summary["transitions"]
    counts = {(a, b): matrix["counts"][i][j] for i, a in enumerate(matrix["from"]) for j, b in enumerate(matrix["to"]) if matrix["counts"][i][j]}
    assert counts == {
        ("start", "code"): 2, ("start", "search"): 1, ("start", "answer"): 1, ("start", "invalid"): 1,
        ("code", "code"): 1, ("code", "answer"): 2, ("search", "answer"): 1, ("answer", "end"): 4, ("invalid", "end"): 1,
    }
    start = matrix["from"].index("start")
    assert sum(matrix["probabilities"][start]) == pytest.approx(1.0)
    assert matrix["probabilities"][start][matrix["to"].index("code")] == pytest.approx(2 / 5)


def test_long_paths_are_cut():
    turns = [turn(i, kind, NUMERIC_CODE if kind == "code" else "q") for i, kind in enumerate(["code", "search"] * 3)] + [turn(6, "answer", "1")]
    summary = _summary([trajectory("long", "x", turns, 1.0)], max_path_actions=3)
    assert summary["paths"]["top"][0]["path"] == "code → search → code → …"


def test_complexity_buckets():
    complexity = _summary(five_trajectories())["complexity"]
    by_turns = {row["bucket"]: (row["n"], row["accuracy"]) for row in complexity["by_turns"]}
    assert by_turns == {"1": (2, 0.0), "2": (2, 1.0), "3": (1, 0.0)}
    by_calls = {row["bucket"]: (row["n"], row["accuracy"], row["tool_calls_per_trajectory"]) for row in complexity["by_tool_calls"]}
    assert by_calls == {"0": (2, 0.0, 0.0), "1": (2, 1.0, 1.0), "2": (1, 0.0, 2.0)}
    split = complexity["with_vs_without_tools"]
    assert split["chart"] == {"with_tools": {"n": 2, "accuracy": 0.5}, "without_tools": {"n": 0, "accuracy": None}}
    assert split["ocr"] == {"with_tools": {"n": 1, "accuracy": 1.0}, "without_tools": {"n": 2, "accuracy": 0.0}}


def test_tool_choice_accuracy():
    records = [
        trajectory("a", "zoom", [turn(0, "code", CROP_CODE), turn(1, "answer", "1")], 1.0, required_tools=["code_execution"]),  # match
        trajectory("b", "zoom", [turn(0, "code", CROP_CODE), turn(1, "search", "q"), turn(2, "answer", "1")], 1.0, required_tools=["text_search"]),  # covers only
        trajectory("c", "zoom", [turn(0, "answer", "1")], 1.0, required_tools=["code"]),  # neither
        trajectory("d", "plain", [turn(0, "code", CROP_CODE), turn(1, "answer", "1")], 1.0, required_tools=[]),  # covers (nothing required), but a tool where none needed
        trajectory("e", "plain", [turn(0, "answer", "1")], 1.0, required_tools=[]),  # match and cover (no tool, none needed)
        trajectory("f", "plain", [turn(0, "answer", "1")], 1.0),  # unlabelled
    ]
    choice = _summary(records)["tool_choice"]
    assert choice["overall"] == {
        "labelled": 5, "unlabelled": 1, "match_rate": 2 / 5, "cover_rate": 4 / 5, "none_needed": 2, "called_when_none_needed_rate": 1 / 2,
    }
    assert choice["categories"]["zoom"]["match_rate"] == pytest.approx(1 / 3)
    assert choice["categories"]["zoom"]["cover_rate"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, None),
        ({"required_tools": []}, frozenset()),
        ({"required_tools": "code_execution, text_search"}, frozenset({"code", "search"})),
        ({"extra": {"required_tools": ["image_zoom_in_tool"]}}, frozenset({"image_zoom_in_tool"})),
        ({"required_tools": "none"}, frozenset()),
        ({"required_tools": float("nan")}, None),  # an empty TSV cell
    ],
)
def test_required_tools_field(metadata, expected):
    assert required_tools(metadata) == expected


def test_tools_come_from_the_counts_dict():
    # A fourth tool (as a tool registry may add) is analysed without any code change.
    record = trajectory("z", "fine", [turn(0, "answer", "1")], 1.0)
    record["tool_calls"]["image_zoom_in_tool"] = 2
    record["turns"].insert(0, {"index": 0, "model_text": "zoom", "action": {"kind": "image_zoom_in_tool", "content": "{}"}, "observation": None})
    summary = _summary([record])
    assert summary["tools"] == ["code", "search", "image_search", "image_zoom_in_tool", "select_frames"]
    assert summary["overall"]["tool_use_rate"]["image_zoom_in_tool"] == 1.0
    assert summary["overall"]["calls_per_trajectory"]["image_zoom_in_tool"] == 2.0
    assert summary["paths"]["top"][0]["path"] == "image_zoom_in_tool → answer"


def _rl_records(rates: list[int]) -> list[dict]:
    """Per step, two trajectories; the first calls code ``rate`` times, the second never."""
    records = []
    for step, calls in enumerate(rates, start=1):
        code_turns = [turn(i, "code", NUMERIC_CODE) for i in range(calls)]
        records.append(trajectory(f"s{step}a", "math", [*code_turns, turn(calls, "answer", "1")], 1.0, step=step))
        records.append(trajectory(f"s{step}b", "math", [turn(0, "answer", "2")], 0.0, step=step))
    return records


def test_rl_steps_and_collapse_alarm():
    # tool calls per trajectory: 2.0, 1.5, 0.5, 0.5, 0.5 → threshold 1.0, below at steps 3, 4, 5
    summary = _summary(_rl_records([4, 3, 1, 1, 1]), collapse_fraction=0.5, collapse_patience=3)
    rl = summary["rl_steps"]
    assert rl["steps"] == [1, 2, 3, 4, 5] and rl["n_per_step"] == [2] * 5
    assert rl["series"]["tool_calls_per_trajectory"] == [2.0, 1.5, 0.5, 0.5, 0.5]
    assert rl["series"]["calls_per_trajectory/code"] == [2.0, 1.5, 0.5, 0.5, 0.5]
    assert rl["series"]["reward/accuracy"] == [0.5] * 5
    assert rl["series"]["mean_turns"] == [3.0, 2.5, 1.5, 1.5, 1.5]
    assert rl["collapse"]["fired_at"] == [5] and rl["collapse"]["baseline"] == 2.0 and rl["collapse"]["threshold"] == 1.0
    assert rl["collapse"]["messages"][0].startswith("tool-use collapse at step 5")


def test_no_alarm_when_tool_use_holds():
    rl = _summary(_rl_records([2, 2, 1, 2, 1]), collapse_patience=2)["rl_steps"]
    assert rl["collapse"]["fired_at"] == [] and rl["collapse"]["messages"] == []


def test_alarm_from_trainer_metrics_without_step_trajectories():
    metrics = [{"step": s, "tools/calls_per_trajectory": v, "reward/mean": 0.5} for s, v in enumerate([1.0, 0.2, 0.2], start=1)]
    rl = _summary([], metrics, collapse_patience=2)["rl_steps"]
    assert rl["collapse"]["source"] == "metrics.jsonl" and rl["collapse"]["fired_at"] == [3]
    assert rl["trainer_metrics"]["series"]["reward/mean"] == [0.5, 0.5, 0.5]


def test_evaluation_runs_have_no_rl_block():
    assert _summary(five_trajectories())["rl_steps"] is None
