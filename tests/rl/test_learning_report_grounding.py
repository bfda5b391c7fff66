"""The learning report shows a dataset graded by IoU beside the learning categories, never inside them."""

from __future__ import annotations

import json
from pathlib import Path

from deepeyes.rl.learning_report import report


def _block(right: int, n: int, valid: float, tools: float, turns: float) -> dict:
    return {"n": n, "accuracy": right / n, "valid_action_share": valid, "any_tool_call_rate": tools, "mean_turns": turns}


def _write_run(out: Path, run: str, counting_right: int, boxes: list[float]) -> None:
    """20 counting samples (the first ``counting_right`` right), and grounding samples with IoUs ``boxes``."""
    counting = _block(counting_right, 20, 1.0, 1.0, 2.0)
    hits = [iou >= 0.5 for iou in boxes]
    grounding = _block(sum(hits), len(boxes), 0.5, 1.0, 3.0)
    box_block = {"n": len(boxes), "acc@0.5": sum(hits) / len(boxes), "acc@0.5_ci": [0.1, 0.6], "mean_iou": sum(boxes) / len(boxes), "mean_iou_ci": [0.05, 0.4]}
    results = {
        # The evaluation's own overall pools every dataset, grounding included (30 samples).
        "overall": _block(counting_right + sum(hits), 30, 5 / 7, 1.0, 2.33),
        "datasets": {
            "DeepEyesMini_Visual": {
                "overall": counting,
                "categories": {"counting": counting},
                "sample_accuracy": {str(i): float(i < counting_right) for i in range(20)},
            },
            "DeepEyesMini_Grounding": {
                "overall": grounding,
                "categories": {"grounding": grounding},
                "sample_accuracy": {str(i): float(hit) for i, hit in enumerate(hits)},
                "grounding": {**box_block, "categories": {"grounding": box_block}},
            },
        },
    }
    (out / f"eval_{run}").mkdir(parents=True)
    (out / f"eval_{run}" / "eval_results.json").write_text(json.dumps(results), encoding="utf-8")


def test_grounding_rows_are_reported_beside_and_counted_nowhere(tmp_path: Path) -> None:
    _write_run(tmp_path, "base", 0, [0.0] * 10)
    _write_run(tmp_path, "sft", 12, [0.0] * 10)
    _write_run(tmp_path, "rl", 16, [0.9, 0.7, 0.2] + [0.0] * 7)
    text, all_met = report(tmp_path)
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("-- reported beside"))
    # Every grounding line comes after the rule, with Acc@0.5, its interval and the mean IoU.
    assert "grounding     rl       10     20.0%          50.0%          100.0%  [10.0, 60.0]  mean IoU 0.180 [0.050, 0.400]" in lines[rule + 1 :]
    assert not [line for line in lines[:rule] if line.startswith("grounding")]
    # overall covers the 20 counting samples alone: 12/20 for SFT, not the evaluation's 12/30,
    # with the Wilson interval of those 20 and the valid-action share of their turns.
    assert "overall       sft      20     60.0%         100.0%          100.0%  [38.7, 78.1]" in text
    assert "SFT held-out accuracy" in text and "RL accuracy gain over SFT" in text and "+20.0 points" in text
    assert not [line for line in text.split("Learning targets:")[1].splitlines() if "grounding" in line]
    # The paired tests pair the counting samples only.
    assert "sft vs base: n=20, 60.0% vs 0.0%" in text and "rl vs sft: n=20, 80.0% vs 60.0%" in text
    assert all_met


def test_without_a_grounding_dataset_the_evaluations_overall_is_kept(tmp_path: Path) -> None:
    for run in ("base", "sft"):
        block = _block(5, 20, 0.9, 1.0, 2.0)
        results = {"overall": {**block, "accuracy_ci": [0.1, 0.5]}, "datasets": {"D": {"overall": block, "categories": {"c": block}}}}
        (tmp_path / f"eval_{run}").mkdir()
        (tmp_path / f"eval_{run}" / "eval_results.json").write_text(json.dumps(results), encoding="utf-8")
    text, _ = report(tmp_path)
    assert "overall       sft      20     25.0%          90.0%          100.0%  [10.0, 50.0]" in text
    assert "reported beside" not in text
