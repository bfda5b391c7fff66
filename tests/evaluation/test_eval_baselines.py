"""Baselines and data guards on sets built to be biased: a reader sees what is signal."""

from __future__ import annotations

import json

import pytest

from deepeyes.evaluation.baselines import flags, trivial_baselines
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import load_dataset
from deepeyes.evaluation.guards import data_guards
from deepeyes.evaluation.runner import evaluate
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.prompts import no_tool_system_prompt
from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.utils.stats import wilson_interval

OPTIONS = {"A": "red", "B": "green", "C": "blue", "D": "yellow"}
#: Eight 4-option rows, all with gold answer A; two open rows answered "3".
ALWAYS_A = [{"index": i, "question": f"Which colour is patch {i}?", "answer": "A", "category": "mc", **OPTIONS} for i in range(8)] + [
    {"index": 8, "question": "How many patches are green?", "answer": "3", "category": "open"},
    {"index": 9, "question": "How many patches are blue?", "answer": "3", "category": "open"},
]


def _config(lmudata, tmp_path, **overrides) -> EvalConfig:
    settings = {"datasets": ["AlwaysA"], "lmudata": str(lmudata), "output_dir": str(tmp_path / "out"), "use_tools": False, "show_progress": False, "report": False}
    return EvalConfig(**{**settings, **overrides})


def test_trivial_baselines_on_an_always_a_set(make_tsv):
    samples = load_dataset("AlwaysA", make_tsv("AlwaysA", ALWAYS_A).parent)
    model = {s.id: 0.0 for s in samples} | {"AlwaysA/0": 1.0}  # the model gets one row right
    found = trivial_baselines(samples, model)
    first = found["always_first_option"]
    assert (first["accuracy"], first["n"], first["rows"], first["model_accuracy"]) == (1.0, 8, "multiple choice", 1 / 8)
    assert first["accuracy_ci"] == pytest.approx(list(wilson_interval(8, 8)))
    frequent = found["most_frequent_answer"]
    assert (frequent["answer"], frequent["accuracy"], frequent["n"], frequent["model_accuracy"]) == ("option A", 0.8, 10, 0.1)
    assert (found["uniform_random"]["accuracy"], found["uniform_random"]["accuracy_ci"]) == (0.25, None)
    sentences = flags("AlwaysA", found)
    assert sentences == [
        "AlwaysA: always-first-option reaches 100.0 % on 8 multiple-choice rows, the model 12.5 %",
        "AlwaysA: most-frequent-answer reaches 80.0 % on 10 rows, the model 10.0 %",
        "AlwaysA: uniform-random reaches 25.0 % on 8 multiple-choice rows, the model 12.5 %",
    ]


def test_data_guards_flag_letter_bias_duplicates_and_orphan_answers(make_tsv, png):
    rows = [*ALWAYS_A, {**ALWAYS_A[0], "index": 10}, {"index": 11, "question": "Which shape?", "answer": "E", **OPTIONS}]
    block = data_guards(load_dataset("Faulty", make_tsv("Faulty", rows).parent))
    assert (block["rows"], block["choice_rows"]) == (12, 10)
    assert block["gold_letters"] == {"4": {"A": 9}}
    # P(X >= 9 | n = 9, p = ¼) = ¼⁹ = 3.8e-06
    assert block["flags"][0].startswith("gold answer is A in 9 of 9 4-option rows (100 %, chance 25 %, binomial p = 3.8e-06)")
    assert (block["duplicate_rows"], block["duplicates"]) == (1, [["0", "10"]])
    assert (block["answer_not_in_options"], block["answer_not_in_options_rows"]) == (1, ["11"])
    assert len(block["flags"]) == 3

    # Same question text on another image is not a duplicate; a balanced set raises no flag.
    balanced = [{"index": i, "question": "Which colour?", "answer": "ABCD"[i % 4], "image": png(colour), **OPTIONS} for i, colour in enumerate(["red", "green", "blue", "white"])]
    clean = data_guards(load_dataset("Balanced", make_tsv("Balanced", balanced).parent))
    assert clean["flags"] == [] and clean["gold_letters"] == {"4": {"A": 1, "B": 1, "C": 1, "D": 1}}


def test_a_4_option_set_is_flagged_above_40_percent_only(make_tsv):
    # 10 rows: A gold on 4 (40 %: not flagged) then on 5 (50 %: flagged, P(X >= 5 | 10, ¼) = 0.0781).
    def rows(a_count: int) -> list[dict]:
        letters = ["A"] * a_count + ["B", "C", "D"] * 4
        return [{"index": i, "question": f"q{i}", "answer": letters[i], **OPTIONS} for i in range(10)]

    assert data_guards(load_dataset("Forty", make_tsv("Forty", rows(4)).parent))["flags"] == []
    (flag,) = data_guards(load_dataset("Fifty", make_tsv("Fifty", rows(5)).parent))["flags"]
    assert "A in 5 of 10 4-option rows (50 %, chance 25 %, binomial p = 0.078)" in flag


def test_empty_predictions_are_not_scored_as_option_a(make_tsv, tmp_path):
    """VLMEvalKit #1701: an empty prediction fell back to A. Here it is wrong, and the baselines say what A would score."""
    lmudata = make_tsv("AlwaysA", ALWAYS_A).parent
    results = evaluate(_config(lmudata, tmp_path), policy=ScriptedPolicy(["<answer></answer>"]))
    block = results["datasets"]["AlwaysA"]
    assert block["overall"]["accuracy"] == 0.0
    assert block["baselines"]["always_first_option"]["accuracy"] == 1.0
    assert block["data_guards"]["flags"][0].startswith("gold answer is A in 8 of 8 4-option rows")
    assert any("always-first-option reaches 100.0 %" in flag for flag in results["flags"])
    on_disk = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert on_disk["datasets"]["AlwaysA"]["baselines"]["most_frequent_answer"]["answer"] == "option A"
    assert on_disk["datasets"]["AlwaysA"]["sample_accuracy"] == {str(i): 0.0 for i in range(10)}


def test_model_baselines_without_image_and_without_tools(make_tsv, tmp_path):
    """A policy that answers right only when it sees the image and has its tools: both baselines fall to 0."""

    def policy(messages) -> str:
        sees = bool(messages[1].images)
        has_tools = messages[0].content != no_tool_system_prompt()
        return "<answer>A</answer>" if sees and has_tools else "<answer>B</answer>"

    lmudata = make_tsv("AlwaysA", ALWAYS_A[:8]).parent
    tools = ToolManager(config=ToolManagerConfig())  # not started, and never called: no service starts
    try:
        results = evaluate(_config(lmudata, tmp_path, use_tools=True, baseline_runs=["no_image,no_tools"]), policy=ScriptedPolicy(policy), tool_manager=tools)
    finally:
        tools.close()
    block = results["datasets"]["AlwaysA"]
    assert block["overall"]["accuracy"] == 1.0
    for name in ("no_image", "no_tools"):
        baseline = block["baselines"][name]
        assert (baseline["accuracy"], baseline["n"], baseline["model_accuracy"]) == (0.0, 8, 1.0)
        paired = baseline["model_vs_baseline"]
        # the model right on all 8, the baseline on none: difference +1 in every resample; p = 2 · ½⁸
        assert (paired["difference"], paired["difference_ci"], paired["mcnemar_p"]) == (1.0, [1.0, 1.0], pytest.approx(2 / 256))
        assert len((tmp_path / "out" / "baselines" / name / "AlwaysA.jsonl").read_text().splitlines()) == 8
    no_image = [json.loads(line) for line in (tmp_path / "out" / "baselines" / "no_image" / "AlwaysA.jsonl").read_text().splitlines()]
    assert all(record["images"] == [] for record in no_image)

    plain = evaluate(_config(lmudata, tmp_path, output_dir=str(tmp_path / "plain"), baseline_runs=["no_tools"]), policy=ScriptedPolicy(["<answer>A</answer>"]))
    assert "no_tools" not in plain["datasets"]["AlwaysA"]["baselines"]  # the run itself has no tools
