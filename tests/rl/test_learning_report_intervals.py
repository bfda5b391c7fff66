"""The learning report prints each accuracy's interval and the paired tests SFT vs base, RL vs SFT."""

from __future__ import annotations

import json
from pathlib import Path

from deepeyes.rl.learning_report import report


def _write_run(out: Path, run: str, right: set[int]) -> None:
    """20 held-out samples, the ones in ``right`` answered correctly; intervals as the evaluation writes them."""
    accuracy = len(right) / 20
    block = {"n": 20, "accuracy": accuracy, "accuracy_ci": [0.3, 0.7] if right else [0.0, 0.161], "valid_action_share": 1.0, "any_tool_call_rate": 1.0}
    results = {
        "overall": block,
        "datasets": {"DeepEyesMini_Visual": {"categories": {"counting": block}, "sample_accuracy": {str(i): float(i in right) for i in range(20)}}},
    }
    (out / f"eval_{run}").mkdir(parents=True)
    (out / f"eval_{run}" / "eval_results.json").write_text(json.dumps(results), encoding="utf-8")


def test_intervals_and_paired_tests(tmp_path: Path) -> None:
    _write_run(tmp_path, "base", set())
    _write_run(tmp_path, "sft", set(range(10)))
    _write_run(tmp_path, "rl", set(range(10)))
    text, _ = report(tmp_path)
    assert "counting      sft      20     50.0%         100.0%          100.0%  [30.0, 70.0]" in text
    assert "counting      base     20      0.0%         100.0%          100.0%  [0.0, 16.1]" in text
    # SFT right on 10 samples the base gets wrong: resampled mean K/20, K ~ Bin(20, ½) → [0.30, 0.70]; p = 2 · ½¹⁰.
    assert (
        "sft vs base: n=20, 50.0% vs 0.0%, +50.0 points [+30.0, +70.0] (95% paired bootstrap), "
        "right only by sft 10 / only by base 0, exact McNemar p = 0.00195: sft better"
    ) in text
    # RL right on exactly the same samples: no discordant pair, the difference is 0 in every resample.
    assert "rl vs sft: n=20, 50.0% vs 50.0%, +0.0 points [+0.0, +0.0]" in text and "p = 1: no detectable difference" in text


def test_results_without_per_sample_accuracies_say_so(tmp_path: Path) -> None:
    for run in ("base", "sft"):
        (tmp_path / f"eval_{run}").mkdir()
        block = {"n": 4, "accuracy": 0.25, "valid_action_share": 1.0, "any_tool_call_rate": 0.0}
        (tmp_path / f"eval_{run}" / "eval_results.json").write_text(json.dumps({"overall": block, "datasets": {"D": {"categories": {"c": block}}}}))
    text, _ = report(tmp_path)
    assert "sft vs base: unavailable" in text
    assert "c             base      4     25.0%         100.0%            0.0%  –" in text
