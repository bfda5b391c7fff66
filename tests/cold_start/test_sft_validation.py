"""Every defect class is caught, the sample is excluded and listed, and --strict refuses to write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sft_fixtures import seed_records, sharegpt_record

from deepeyes.data import sft_validation as v
from deepeyes.data.to_llamafactory import (
    REPORT_FILE,
    ConvertOptions,
    ValidationFailed,
    convert,
    main,
)


def _with(record: dict, **changes) -> dict:
    return {**json.loads(json.dumps(record)), **changes}


def _assistant(record: dict, content: str) -> dict:
    broken = _with(record)
    broken["messages"][-1]["content"] = content
    return broken


def _defects(data_root: Path) -> dict[str, dict]:
    """One ShareGPT record per defect class, keyed by the class the report must name."""
    good = sharegpt_record("x", "images/q1.png")
    (data_root / "images" / "corrupt.png").write_bytes(b"not a png at all")
    return {
        v.BAD_ROLES: _with(good, messages=good["messages"][:2]),
        v.IMAGE_MISSING: _with(good, images=["images/absent.png"]),
        v.IMAGE_UNREADABLE: _with(good, images=["images/corrupt.png"]),
        v.PLACEHOLDER_MISMATCH: _with(good, images=["images/q1.png", "images/q2.png"]),
        v.UNBALANCED_TAGS: _assistant(good, "<think>\nno closing tag\n<answer>3</answer>"),
        v.INVALID_ACTION: _assistant(good, "<think>\nthinking only\n</think>"),
    }


def _write_inputs(data_root: Path) -> Path:
    records = []
    for kind, record in _defects(data_root).items():
        records.append(_with(record, id=f"bad-{kind}"))
    records.append(sharegpt_record("good-1", "images/q1.png"))
    records.append(sharegpt_record("good-1", "images/q2.png"))  # duplicate id: the second one goes
    path = data_root / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n" + json.dumps({"foo": 1}) + "\n")
    return path


def test_each_defect_class_is_excluded_and_reported(data_root: Path, tmp_path: Path) -> None:
    source = _write_inputs(data_root)
    result = convert(ConvertOptions(inputs=[source], out=tmp_path / "out"))
    report = json.loads(result.report_file.read_text())
    kinds_by_id = {entry["id"]: {p["kind"] for p in entry["problems"]} for entry in report["excluded"]}
    for kind in (v.BAD_ROLES, v.IMAGE_MISSING, v.IMAGE_UNREADABLE, v.PLACEHOLDER_MISMATCH, v.UNBALANCED_TAGS, v.INVALID_ACTION):
        assert kind in kinds_by_id[f"bad-{kind}"], kind
    assert kinds_by_id["good-1"] == {v.DUPLICATE_ID}
    assert [e["index"] for e in report["excluded"] if e["id"] == "good-1"] == [7]
    assert kinds_by_id["mixed.jsonl#8"] == {v.UNREADABLE_RECORD}  # the bad JSON line
    assert kinds_by_id["mixed.jsonl#9"] == {v.UNREADABLE_RECORD}  # neither format
    kept = json.loads(result.dataset_file.read_text())
    assert [row["id"] for row in kept] == ["good-1"]
    assert kept[0]["images"][0].endswith("images/q1.png")  # the first of the duplicates stays


def test_nothing_is_dropped_without_a_report_entry(data_root: Path, tmp_path: Path) -> None:
    result = convert(ConvertOptions(inputs=[_write_inputs(data_root)], out=tmp_path / "out"))
    report = result.report
    assert report["totals"]["read"] == 10
    assert report["totals"]["kept"] + len(report["excluded"]) == report["totals"]["read"]
    assert report["sources"]["mixed.jsonl"] == {"read": 10, "kept": 1, "excluded": 9}


def test_strict_fails_writes_the_report_and_no_dataset(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    clean = data_root / "clean.jsonl"
    clean.write_text(json.dumps(sharegpt_record("ok", "images/q1.png")) + "\n")
    convert(ConvertOptions(inputs=[clean], out=out))
    assert (out / "deepeyes_sft.json").is_file()
    with pytest.raises(ValidationFailed, match="--strict"):
        convert(ConvertOptions(inputs=[_write_inputs(data_root)], out=out, strict=True))
    assert not (out / "deepeyes_sft.json").exists()  # the earlier run's dataset is gone too
    assert not (out / "dataset_info.json").exists()
    assert json.loads((out / REPORT_FILE).read_text())["problems_by_kind"][v.IMAGE_MISSING] == 1


def test_strict_cli_exits_nonzero(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(_write_inputs(data_root)), "--out", str(tmp_path / "out"), "--strict"]) == 1
    assert "problem(s)" in capsys.readouterr().err


def test_seed_record_defects_are_reported(data_root: Path, tmp_path: Path) -> None:
    wrong_thoughts = _with(seed_records()[0], id="thoughts", thoughts=["only one"])
    unknown_tool = _with(seed_records()[2], id="tool", tool_calls=[{"tool": "calculator", "input": "1+1", "output": "2"}])
    url_image = _with(seed_records()[2], id="url", image="https://example.com/a.png")
    path = data_root / "seed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (wrong_thoughts, unknown_tool, url_image)))
    with pytest.raises(ValidationFailed, match="no usable samples"):
        convert(ConvertOptions(inputs=[path], out=tmp_path / "out"))
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    details = {e["id"]: e["problems"][0] for e in report["excluded"]}
    assert details["thoughts"]["kind"] == v.UNREADABLE_RECORD and "thoughts" in details["thoughts"]["detail"]
    assert details["tool"]["kind"] == v.UNREADABLE_RECORD and "code_execution" in details["tool"]["detail"]
    assert details["url"]["kind"] == v.IMAGE_MISSING and "URL" in details["url"]["detail"]


def test_samples_over_cutoff_are_counted_with_the_model_processor(data_root: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    source = data_root / "one.jsonl"
    source.write_text(json.dumps(sharegpt_record("long", "images/q1.png")) + "\n")
    generous = convert(ConvertOptions(inputs=[source], out=tmp_path / "a", model=tiny_model_dir, cutoff_len=100_000))
    assert generous.report["totals"]["kept"] == 1
    with pytest.raises(ValidationFailed):
        convert(ConvertOptions(inputs=[source], out=tmp_path / "b", model=tiny_model_dir, cutoff_len=64))
    [entry] = json.loads((tmp_path / "b" / REPORT_FILE).read_text())["excluded"]
    [problem] = entry["problems"]
    assert problem["kind"] == v.OVER_CUTOFF
    tokens = int(problem["detail"].split()[0])
    # the system prompt alone is hundreds of tokens; the 64x48 image adds at least 4 visual tokens
    assert 100 < tokens < 5000


def test_tag_balance_rules() -> None:
    assert v._balanced("<think>\na\n</think>\n<answer>1</answer>", "think")
    assert not v._balanced("</think><think>", "think")
    assert not v._balanced("<code><code>x</code></code>", "code")
    assert v._balanced("no tags at all", "tool_call")
