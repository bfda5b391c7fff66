"""Bad input: malformed lines are named and skipped, another schema version stops, empty runs say so."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import five_trajectories, write_jsonl

from deepeyes.analysis.analyze import analyze
from deepeyes.analysis.cli import main
from deepeyes.analysis.sources import (
    ReadStats,
    RunNotFoundError,
    SchemaVersionError,
    iter_records,
    resolve_run,
)


def test_malformed_lines_are_named_counted_and_skipped(tmp_path, caplog):
    good = five_trajectories()
    missing_turns = {k: v for k, v in good[1].items() if k != "turns"}
    path = write_jsonl(tmp_path / "run.jsonl", [good[0], '{"id": "half-writ', missing_turns, "[1, 2]", good[2], ""])
    stats = ReadStats()
    with caplog.at_level(logging.WARNING, logger="deepeyes.analysis.sources"):
        records = list(iter_records(resolve_run("r", path), stats))
    assert [r["id"] for r in records] == ["t1", "t3"]
    assert stats.records == 2 and stats.malformed == 3
    assert [(p["line"], p["file"]) for p in stats.problems] == [(2, str(path)), (3, str(path)), (4, str(path))]
    assert "missing turns" in stats.problems[1]["error"] and "expected a JSON object" in stats.problems[2]["error"]
    assert f"{path} line 2 skipped" in caplog.text


def test_full_validation_catches_what_the_quick_check_lets_through(tmp_path):
    record = five_trajectories()[0]
    record["stop_reason"] = "gave_up"  # not in the schema's enum; the analysis does not read it specially
    path = write_jsonl(tmp_path / "run.jsonl", [record])
    quick, full = ReadStats(), ReadStats()
    assert len(list(iter_records(resolve_run("r", path), quick))) == 1
    assert list(iter_records(resolve_run("r", path), full, full_validation=True)) == []
    assert full.malformed == 1 and "breaks the trajectory schema" in full.problems[0]["error"]


def test_malformed_lines_reach_the_summary_and_report(tmp_path):
    path = write_jsonl(tmp_path / "run.jsonl", [*five_trajectories(), "not json"])
    summary = analyze({"r": path}, tmp_path / "out")
    assert summary["runs"]["r"]["read"]["malformed_lines"] == 1 and summary["runs"]["r"]["overall"]["n"] == 5
    assert f"{path} line 6 skipped" in (tmp_path / "out" / "behavior_report.html").read_text()


def test_another_schema_version_is_a_clear_error(tmp_path, capsys):
    newer = {**five_trajectories()[0], "schema_version": 2}
    path = write_jsonl(tmp_path / "run.jsonl", [five_trajectories()[0], newer])
    with pytest.raises(SchemaVersionError, match=r"run\.jsonl line 2: trajectory schema_version 2, but this analysis reads version 1"):
        list(iter_records(resolve_run("r", path), ReadStats()))
    assert main(["--runs", f"r={path}", "--out", str(tmp_path / "out"), "--no_progress"]) == 2
    assert "schema_version 2" in capsys.readouterr().err


def test_empty_run_gives_an_empty_report_that_says_so(tmp_path):
    (tmp_path / "eval" / "trajectories").mkdir(parents=True)
    (tmp_path / "eval" / "trajectories" / "SetA.jsonl").write_text("\n")
    summary = analyze({"empty": tmp_path / "eval"}, tmp_path / "out")
    run = summary["runs"]["empty"]
    assert run["empty"] and run["read"]["trajectories"] == 0 and run["overall"] == {"n": 0}
    assert summary["figures"] == {}
    html = (tmp_path / "out" / "behavior_report.html").read_text()
    assert "Run <b>empty</b> is empty" in html
    assert (tmp_path / "out" / "behavior_report.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((tmp_path / "out" / "behavior_summary.json").read_text())["runs"]["empty"]["empty"] is True


def test_rl_folder_with_metrics_only_is_a_run(tmp_path):
    write_jsonl(tmp_path / "rl" / "metrics.jsonl", [{"step": 1, "tools/calls_per_trajectory": 1.0}, "garbage", {"no_step": 1}])
    source = resolve_run("rl", tmp_path / "rl")
    assert source.kind == "rl" and source.files == [] and source.metrics_file == tmp_path / "rl" / "metrics.jsonl"
    summary = analyze({"rl": tmp_path / "rl"}, tmp_path / "out")
    run = summary["runs"]["rl"]
    assert run["empty"] and run["read"]["malformed_lines"] == 2
    assert run["rl_steps"]["trainer_metrics"]["steps"] == [1]
    assert list(summary["figures"]) == ["rl/rl_steps"]  # the trainer's curves are still drawn


def test_unknown_paths_are_errors(tmp_path):
    with pytest.raises(RunNotFoundError, match="does not exist"):
        resolve_run("x", tmp_path / "nowhere")
    (tmp_path / "folder").mkdir()
    with pytest.raises(RunNotFoundError, match="neither an evaluation output folder"):
        resolve_run("x", tmp_path / "folder")


def test_a_last_line_torn_inside_a_multibyte_character_is_skipped_and_named(tmp_path, caplog):
    records = five_trajectories()
    records[-1]["question"] = "北京在哪里？"
    last = json.dumps(records[-1], ensure_ascii=False).encode()
    cut = last[: last.index("北".encode()) + 1]  # a crash between the bytes of one character
    path = tmp_path / "eval" / "trajectories" / "SetA.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records[:-1]) + cut)
    stats = ReadStats()
    with caplog.at_level(logging.WARNING, logger="deepeyes.analysis.sources"):
        assert len(list(iter_records(resolve_run("r", tmp_path / "eval"), stats))) == 4
    assert stats.malformed == 1 and stats.problems[0]["error"].startswith("torn last line")
    assert f"{path} line 5 skipped: torn last line" in caplog.text
