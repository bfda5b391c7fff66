"""Golden conversions: seed records and DeepEyesV2 ShareGPT (every layout) → LLaMA-Factory ShareGPT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sft_fixtures import load_golden, seed_records, sharegpt_record

from deepeyes.data.to_llamafactory import (
    DATASET_INFO_FILE,
    ConvertOptions,
    convert,
    main,
)
from deepeyes.prompts import system_prompt


def _relative_rows(dataset_file: Path, root: Path) -> list[dict]:
    """Output rows with image paths relative to ``root`` and the system prompt abbreviated,
    so they compare with the checked-in golden file."""
    rows = json.loads(dataset_file.read_text())
    for row in rows:
        row["images"] = [str(Path(p).relative_to(root.resolve())) for p in row["images"]]
        for message in row["messages"]:
            if message["role"] == "system":
                assert message["content"] == system_prompt()
                message["content"] = "{SYSTEM_PROMPT}"
    return rows


def test_seed_records_convert_to_the_golden_conversations(seed_file: Path, data_root: Path, tmp_path: Path) -> None:
    result = convert(ConvertOptions(inputs=[seed_file], out=tmp_path / "out"))
    assert _relative_rows(result.dataset_file, data_root) == load_golden("seed_expected.json")
    assert result.report["totals"] == {"read": 3, "kept": 3, "excluded": 0}


def test_images_resolve_against_image_root_and_become_absolute(data_root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "records" / "seed.jsonl"
    elsewhere.parent.mkdir()
    elsewhere.write_text(json.dumps(seed_records()[2]) + "\n")
    result = convert(ConvertOptions(inputs=[elsewhere], out=tmp_path / "out", image_root=data_root))
    [row] = json.loads(result.dataset_file.read_text())
    assert row["images"] == [str((data_root / "images/q3.png").resolve())]


def test_dataset_info_describes_the_sharegpt_file(seed_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(ConvertOptions(inputs=[seed_file], out=out, dataset_name="cold"))
    info = json.loads((out / DATASET_INFO_FILE).read_text())
    assert info == {
        "cold": {
            "file_name": "cold.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant", "system_tag": "system"},
        }
    }


def _sharegpt_rows(data_root: Path) -> list[dict]:
    return [sharegpt_record(f"sg-{i}", f"images/q{i + 1}.png") for i in range(3)]


def _expected_sharegpt(data_root: Path) -> list[dict]:
    rows = _sharegpt_rows(data_root)
    for row in rows:
        row["images"] = [str((data_root / p).resolve()) for p in row["images"]]
    return rows


def test_sharegpt_single_file_passes_through_unchanged(data_root: Path, tmp_path: Path) -> None:
    source = data_root / "sharegpt.json"
    source.write_text(json.dumps(_sharegpt_rows(data_root)))
    result = convert(ConvertOptions(inputs=[source], out=tmp_path / "out"))
    assert json.loads(result.dataset_file.read_text()) == _expected_sharegpt(data_root)


def test_sharegpt_jsonl_and_directory_of_parts_give_the_same_output(data_root: Path, tmp_path: Path) -> None:
    rows = _sharegpt_rows(data_root)
    jsonl = data_root / "all.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = data_root / "parts"
    parts.mkdir()
    (parts / "part-0.json").write_text(json.dumps(rows[:2]))
    (parts / "part-1.jsonl").write_text(json.dumps(rows[2]) + "\n")
    from_jsonl = convert(ConvertOptions(inputs=[jsonl], out=tmp_path / "a"))
    from_parts = convert(ConvertOptions(inputs=[parts], out=tmp_path / "b", image_root=data_root))
    expected = _expected_sharegpt(data_root)
    assert json.loads(from_jsonl.dataset_file.read_text()) == expected
    assert json.loads(from_parts.dataset_file.read_text()) == expected
    assert from_parts.report["sources"] == {
        "part-0.json": {"read": 2, "kept": 2, "excluded": 0},
        "part-1.jsonl": {"read": 1, "kept": 1, "excluded": 0},
    }


def test_saved_hf_dataset_with_embedded_images_is_written_out(data_root: Path, tmp_path: Path) -> None:
    from datasets import Dataset, Features, Image, Sequence, Value

    row = sharegpt_record("hf-0", "unused")
    features = Features(
        {
            "id": Value("string"),
            "messages": [{"role": Value("string"), "content": Value("string")}],
            "images": Sequence(Image()),
        }
    )
    picture = data_root / "images/q1.png"
    embedded = {"bytes": picture.read_bytes(), "path": None}  # as hub datasets ship images: bytes, no file
    dataset = Dataset.from_dict({"id": [row["id"]], "messages": [row["messages"]], "images": [[embedded]]}, features=features)
    saved = tmp_path / "hf_dataset"
    dataset.save_to_disk(str(saved))

    result = convert(ConvertOptions(inputs=[saved], out=tmp_path / "out"))
    [converted] = json.loads(result.dataset_file.read_text())
    assert converted["messages"] == row["messages"]
    [image_path] = converted["images"]
    assert Path(image_path).is_file() and Path(image_path).parent == tmp_path / "out" / "embedded_images"
    from PIL import Image as PILImage

    with PILImage.open(image_path) as written, PILImage.open(picture) as original:
        assert written.size == original.size and list(written.getdata()) == list(original.convert(written.mode).getdata())


def test_cli_reports_and_rejects_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_cli_converts_a_seed_file(seed_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(seed_file), "--out", str(tmp_path / "out")]) == 0
    assert "3 of 3 samples written" in capsys.readouterr().out
    assert (tmp_path / "out" / "deepeyes_sft.json").is_file()


def test_mixed_seed_and_sharegpt_inputs_are_counted_per_source(seed_file: Path, data_root: Path, tmp_path: Path) -> None:
    sharegpt = data_root / "sharegpt.json"
    sharegpt.write_text(json.dumps([sharegpt_record("sg-0", "images/q3.png")]))
    result = convert(ConvertOptions(inputs=[seed_file, sharegpt], out=tmp_path / "out"))
    assert result.report["sources"] == {
        "seed.jsonl": {"read": 3, "kept": 3, "excluded": 0},
        "sharegpt.json": {"read": 1, "kept": 1, "excluded": 0},
    }
