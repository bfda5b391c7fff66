"""End to end: runs of every kind in, HTML/PDF/PNG/summary/browser out, through the CLIs too."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import NUMERIC_CODE, five_trajectories, trajectory, turn, write_jsonl
from PIL import Image

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.analyze import SUMMARY_FILE, analyze
from deepeyes.analysis.cli import main
from deepeyes.analysis.collapse import CollapseAlarm
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.runner import evaluate
from deepeyes.policies.scripted import ScriptedPolicy

ROOT = Path(__file__).resolve().parents[2]


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def _rl_folder(folder: Path, calls_per_step: list[int]) -> Path:
    records = []
    for step, calls in enumerate(calls_per_step, start=1):
        code_turns = [turn(i, "code", NUMERIC_CODE) for i in range(calls)]
        records.append(trajectory(f"s{step}", "math", [*code_turns, turn(calls, "answer", "1")], 1.0, step=step))
    write_jsonl(folder / "trajectories.jsonl", records)
    write_jsonl(folder / "metrics.jsonl", [{"step": s, "reward/mean": 0.5} for s in range(1, len(calls_per_step) + 1)])
    return folder


def test_writes_every_output_with_the_numbers_it_shows(tmp_path):
    run = write_jsonl(tmp_path / "eval.jsonl", five_trajectories())
    rl = _rl_folder(tmp_path / "rl", [2, 2, 0, 0])  # 2 → 0 calls: collapse at step 4 with patience 2
    out = tmp_path / "behavior"
    summary = analyze({"base": run, "rl": rl}, out, AnalysisConfig(collapse_patience=2))
    on_disk = json.loads((out / SUMMARY_FILE).read_text())
    assert on_disk["runs"]["base"]["overall"]["counts"]["tool_calls"] == 4
    assert on_disk["runs"]["rl"]["rl_steps"]["collapse"]["fired_at"] == [4]
    assert on_disk["comparison"]["deltas"]["rl"]["tool_calls_per_trajectory"] == pytest.approx(1.0 - 0.8)
    # every figure is a PNG on disk; the PDF holds a title page plus one page per figure
    assert set(summary["figures"]) == {
        "comparison", *(f"base/{v}" for v in ("tool_use", "code_operations", "paths", "complexity")),
        *(f"rl/{v}" for v in ("tool_use", "code_operations", "paths", "complexity", "rl_steps")),
    }
    for path in summary["figures"].values():
        assert (out / path).read_bytes().startswith(b"\x89PNG")
    pdf = out / "behavior_report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF") and _pdf_pages(pdf) == 1 + len(summary["figures"])
    html = (out / "behavior_report.html").read_text()
    assert "class='alarm'" in html and "tool-use collapse at step 4" in html
    for path in summary["figures"].values():
        assert f"src='{path}'" in html
    # tables link into the browser, and the linked pages exist and show the trajectory
    links = re.findall(r"href='(browser/[^']+)'", html)
    assert links and all((out / link).is_file() for link in links)
    failed = summary["runs"]["base"]["browser"]["groups"]["chart"]["failed code calls"]
    assert failed["count"] == 1 and failed["page"] in links
    group_page = (out / failed["page"]).read_text()
    (trajectory_page,) = re.findall(r"href='(t\d+\.html)'", group_page)
    page = (out / failed["page"]).parent.joinpath(trajectory_page).read_text()
    assert "Trajectory t2" in page and "print((12.5 + 7.5) / 2)" in page and "arithmetic / numeric" in page and ">error<" in page


def test_runs_an_evaluation_output_folder(tmp_path, make_tsv):
    """A folder written by the real evaluation runner is read as it is."""
    rows = [{"index": i, "question": f"What is {i}?", "answer": str(i), "category": "even" if i % 2 == 0 else "odd"} for i in range(4)]
    lmudata = make_tsv("SetA", rows).parent
    config = EvalConfig(datasets=["SetA"], lmudata=str(lmudata), output_dir=str(tmp_path / "eval"), use_tools=False, show_progress=False, report=False)
    evaluate(config, policy=ScriptedPolicy(["<answer>0</answer>"]))
    summary = analyze({"base": tmp_path / "eval"}, tmp_path / "behavior")
    run = summary["runs"]["base"]
    assert run["source"]["kind"] == "eval" and run["read"]["trajectories"] == 4
    assert set(run["categories"]) == {"even", "odd"}
    assert run["overall"]["accuracy"] == pytest.approx(1 / 4) and run["overall"]["any_tool_rate"] == 0.0
    assert run["paths"]["top"] == [{"path": "answer", "count": 4, "share": 1.0}]


@pytest.fixture()
def make_tsv(tmp_path):
    """``make_tsv(name, rows)``: a VLMEvalKit TSV with a small base64 PNG in every row."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode("ascii")

    def write(name, rows):
        folder = tmp_path / "lmu"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.tsv"
        pd.DataFrame([{"image": image, **row} for row in rows]).to_csv(path, sep="\t", index=False)
        return path

    return write


def test_cli_and_entry_script(tmp_path, capsys):
    run = write_jsonl(tmp_path / "run.jsonl", five_trajectories())
    assert main(["--runs", f"only={run}", "--out", str(tmp_path / "a"), "--no_progress"]) == 0
    printed = capsys.readouterr().out
    assert "only: 5 trajectories, 0 malformed lines skipped" in printed and "behavior_report.html" in printed
    script = subprocess.run(
        [sys.executable, str(ROOT / "behavior_analysis" / "analyze.py"), "--runs", f"x={run}", "--out", str(tmp_path / "b"), "--no_progress"],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert script.returncode == 0, script.stderr
    assert (tmp_path / "b" / "behavior_report.pdf").is_file()
    help_text = subprocess.run([sys.executable, "-m", "deepeyes.analysis", "--help"], check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert help_text.returncode == 0 and "--collapse_patience" in help_text.stdout


def test_cli_rejects_bad_run_specs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--runs", "no-equals-sign", "--out", str(tmp_path)])
    assert main(["--runs", f"a={tmp_path / 'missing'}", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unscored_trajectories_report_without_accuracy(tmp_path):
    """Demo and inference logs carry no reward: accuracy is absent, not zero, and nothing breaks."""
    records = [
        trajectory("u1", "chart", [turn(0, "code", NUMERIC_CODE), turn(1, "answer", "3")], None),
        trajectory("u2", "chart", [turn(0, "answer", "4")], None),
    ]
    summary = analyze({"demo": write_jsonl(tmp_path / "demo.jsonl", records)}, tmp_path / "out")
    run = summary["runs"]["demo"]
    assert run["overall"]["accuracy"] is None and run["overall"]["reward"] == {}
    assert [row["accuracy"] for row in run["complexity"]["by_turns"]] == [None, None]
    assert "demo/complexity" in summary["figures"] and (tmp_path / "out" / "behavior_report.pdf").is_file()


def test_trainer_metrics_and_trajectories_give_the_same_alarm(tmp_path):
    """The RL trainer's own metric (rollout_metrics → MetricsWriter) and the replay over its
    logged trajectories (write_jsonl) fire the collapse alarm at the same step."""
    from deepeyes.rl.metrics import MetricsWriter, rollout_metrics
    from deepeyes.trajectory import Trajectory
    from deepeyes.trajectory import write_jsonl as write_trajectories

    folder = tmp_path / "rl"
    writer = MetricsWriter(folder)
    trainer_alarm = CollapseAlarm(fraction=0.5, patience=2)
    for step, calls in enumerate([3, 3, 2, 1, 1, 1], start=1):
        records = [
            trajectory(f"s{step}a", "math", [*(turn(i, "code", NUMERIC_CODE) for i in range(calls)), turn(calls, "answer", "1")], 1.0, step=step),
            trajectory(f"s{step}b", "math", [turn(0, "answer", "1")], 0.0, step=step),
        ]
        batch = [Trajectory.from_dict(r) for r in records]
        results = [{"score": r["reward"]["score"], "accuracy": r["reward"]["accuracy"], "format": 1.0, "tool_efficiency": 0.0, "task_completion": 1.0} for r in records]
        metrics = rollout_metrics(batch, results)
        trainer_alarm.update(step, metrics["tools/calls_per_trajectory"])
        writer.write(step, metrics)
        write_trajectories(folder / "trajectories.jsonl", batch)
    summary = analyze({"rl": folder}, tmp_path / "out", AnalysisConfig(collapse_fraction=0.5, collapse_patience=2))
    rl = summary["runs"]["rl"]["rl_steps"]
    # 1.5, 1.5, 1.0, 0.5, 0.5, 0.5 calls per trajectory: threshold 0.75, below at 4 and 5 → fires at 5
    assert trainer_alarm.fired_at == rl["collapse"]["fired_at"] == [5]
    assert rl["series"]["tool_calls_per_trajectory"] == rl["trainer_metrics"]["series"]["tools/calls_per_trajectory"]


def test_grounding_rows_are_drawn_with_the_predicted_and_the_true_box(tmp_path):
    """A grounding evaluation folder: the report draws both boxes on the question's image, where they are."""
    from deepeyes.analysis.figures import PREDICTED_RGB, TRUTH_RGB

    lmudata = tmp_path / "lmu"
    lmudata.mkdir()
    Image.new("RGB", (224, 224), (200, 200, 200)).save(lmudata / "grey.png")
    rows = [{"index": i, "image_path": "grey.png", "question": f"Where is box {i}?", "answer": "[20, 40, 120, 140]", "category": "grounding"} for i in range(2)]
    pd.DataFrame(rows).to_csv(lmudata / "DeepEyesMini_Grounding.tsv", sep="\t", index=False)
    config = EvalConfig(datasets=["DeepEyesMini_Grounding"], lmudata=str(lmudata), output_dir=str(tmp_path / "eval"), use_tools=False, show_progress=False, report=False)
    evaluate(config, policy=ScriptedPolicy(["<answer>[30, 40, 130, 140]</answer>"]))

    summary = analyze({"eval": tmp_path / "eval"}, tmp_path / "out")
    block = summary["runs"]["eval"]["grounding"]
    assert block["rows"] == {"grounding": 2} and len(block["examples"]) == 2
    example = block["examples"][0]
    assert example["box"] == [30, 40, 130, 140] and example["true_box"] == [20, 40, 120, 140]
    assert example["iou"] == pytest.approx(90 / 110, abs=1e-5)
    assert "eval/grounding" in summary["figures"]  # the PDF page with the examples' grid
    html = (tmp_path / "out" / "behavior_report.html").read_text()
    assert "<img class='boxes' src='figures/eval_grounding_1.png'" in html and "<td>0.82</td>" in html

    picture = Image.open(tmp_path / "out" / "figures" / "eval_grounding_1.png").convert("RGB")
    scale = 320 / 224  # shown at 320 px on the longest side
    middle = round(90 * scale)  # halfway down both boxes (y 40…140)
    # The left edges: the truth at x 20 (3 px wide, inward), the prediction at x 30 (2 px), the grey image between and inside.
    assert picture.getpixel((round(20 * scale) + 2, middle)) == TRUTH_RGB
    assert picture.getpixel((round(30 * scale) + 1, middle)) == PREDICTED_RGB
    assert picture.getpixel((round(30 * scale) - 4, middle)) == (200, 200, 200)
    assert picture.getpixel((round(75 * scale), middle)) == (200, 200, 200)
    # The right edges: the truth ends at x 120 (exclusive), the prediction at 130.
    assert picture.getpixel((round(120 * scale) - 3, middle)) == TRUTH_RGB
    assert picture.getpixel((round(130 * scale) - 2, middle)) == PREDICTED_RGB
    assert picture.getpixel((round(130 * scale) + 3, middle)) == (200, 200, 200)
    # Nothing drawn above the boxes; the legend strip below the image carries both colours.
    assert picture.getpixel((round(75 * scale), round(20 * scale))) == (200, 200, 200)
    legend = [picture.getpixel((x, 320 + 11)) for x in range(picture.width)]
    assert PREDICTED_RGB in legend and TRUTH_RGB in legend
