"""The quick start's learning report: per-category table, targets, and the RL curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from deepeyes.rl.learning_report import main, report


def _block(n: int, accuracy: float, valid: float, tools: float) -> dict:
    return {"n": n, "accuracy": accuracy, "valid_action_share": valid, "any_tool_call_rate": tools}


def _write_run(out: Path, run: str, counting: tuple, no_tool: tuple) -> None:
    categories = {"counting": _block(10, *counting), "no_tool": _block(10, *no_tool)}
    n = 20
    overall = _block(n, (counting[0] + no_tool[0]) / 2, (counting[1] + no_tool[1]) / 2, (counting[2] + no_tool[2]) / 2)
    results = {"overall": overall, "datasets": {"DeepEyesMini_Visual": {"categories": categories}}}
    (out / f"eval_{run}").mkdir(parents=True)
    (out / f"eval_{run}" / "eval_results.json").write_text(json.dumps(results), encoding="utf-8")


def test_report_tables_targets_and_curve(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path, "base", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    _write_run(tmp_path, "sft", (0.6, 1.0, 0.9), (0.8, 1.0, 0.1))
    _write_run(tmp_path, "rl", (0.9, 1.0, 1.0), (0.9, 1.0, 0.0))
    (tmp_path / "rl").mkdir()
    records = [{"step": s, "eval/critic/score/mean": 0.1 * s, "eval/reward/accuracy": 0.05 * s} for s in (0, 2, 4)]
    (tmp_path / "rl" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    text, all_met = report(tmp_path)
    assert all_met
    assert "counting      sft      10     60.0%         100.0%           90.0%" in text
    assert "SFT tool-call rate, tool categories" in text and "RL accuracy gain over SFT" in text
    assert "+20.0 points" in text
    png = tmp_path / "rl_curve.png"
    assert f"RL curve: {png}" in text and Image.open(png).size[0] > 100
    assert main(["--out", str(tmp_path)]) == 0
    assert "Learning targets:" in capsys.readouterr().out


def test_missed_targets_are_reported(tmp_path: Path) -> None:
    _write_run(tmp_path, "base", (0.3, 0.5, 0.0), (0.0, 0.5, 0.0))
    _write_run(tmp_path, "sft", (0.2, 0.7, 0.5), (0.8, 1.0, 0.5))
    text, all_met = report(tmp_path)
    assert not all_met
    assert "base accuracy, counting" in text and "NO" in text
    assert "base accuracy, no_tool (reported)" in text


def test_missing_runs_fail_clearly(tmp_path: Path, capsys) -> None:
    assert main(["--out", str(tmp_path)]) == 2
    assert "quickstart" in capsys.readouterr().err
