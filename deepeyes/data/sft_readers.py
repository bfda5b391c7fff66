"""Read SFT records from every layout the published data comes in.

A single JSON file (a list of records or one record), JSON Lines, a directory of JSON /
JSONL / parquet parts (how large ShareGPT dumps are split), or a local Hugging Face
``datasets`` directory written by ``save_to_disk``. A record that cannot be parsed is
yielded as an error instead of raising, so the validation report can list it: nothing
is dropped silently.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

PART_SUFFIXES = (".json", ".jsonl", ".parquet")
#: Files ``datasets.save_to_disk`` writes; their presence marks a saved HF dataset.
HF_DATASET_MARKERS = ("state.json", "dataset_dict.json")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class RawRecord:
    """One record as read, or the reason it could not be read. ``source`` names the file
    (or dataset split) it came from; ``index`` is its position there."""

    source: str
    index: int
    record: dict[str, Any] | None = None
    error: str | None = None


class InputError(ValueError):
    """The input path itself is unusable (missing, empty, unknown layout)."""


def read_records(path: Path, embedded_image_dir: Path) -> Iterator[RawRecord]:
    """Yield every record under ``path``; images embedded in HF datasets are written as PNG
    files under ``embedded_image_dir`` and replaced by their paths."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_file():
        yield from _read_file(path, path.name)
        return
    if any((path / marker).is_file() for marker in HF_DATASET_MARKERS):
        yield from _read_hf_dataset(path, embedded_image_dir)
        return
    parts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in PART_SUFFIXES)
    if not parts:
        raise InputError(f"{path} holds no {'/'.join(PART_SUFFIXES)} files and is not a saved HF dataset")
    for part in parts:
        yield from _read_file(part, str(part.relative_to(path)))


def _read_file(path: Path, source: str) -> Iterator[RawRecord]:
    if path.suffix == ".jsonl":
        yield from _read_jsonl(path, source)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield RawRecord(source, index, record=row)
    else:
        yield from _read_json(path, source)


def _read_jsonl(path: Path, source: str) -> Iterator[RawRecord]:
    with path.open(encoding="utf-8") as handle:
        index = 0
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield _checked(source, index, json.loads(line))
            except json.JSONDecodeError as exc:
                yield RawRecord(source, index, error=f"line {line_number}: not valid JSON ({exc.msg})")
            index += 1


def _read_json(path: Path, source: str) -> Iterator[RawRecord]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    rows = document if isinstance(document, list) else [document]
    for index, row in enumerate(rows):
        yield _checked(source, index, row)


def _checked(source: str, index: int, row: Any) -> RawRecord:
    if not isinstance(row, dict):
        return RawRecord(source, index, error=f"expected a JSON object, got {type(row).__name__}")
    return RawRecord(source, index, record=row)


def _read_hf_dataset(path: Path, embedded_image_dir: Path) -> Iterator[RawRecord]:
    from datasets import Dataset, DatasetDict, load_from_disk

    loaded = load_from_disk(str(path))
    splits: dict[str, Dataset] = dict(loaded) if isinstance(loaded, DatasetDict) else {path.name: loaded}
    for split, dataset in splits.items():
        for index, row in enumerate(dataset):
            source = f"{path.name}/{split}" if isinstance(loaded, DatasetDict) else split
            yield RawRecord(source, index, record=_materialise_images(row, source, index, embedded_image_dir))


def _materialise_images(row: dict[str, Any], source: str, index: int, image_dir: Path) -> dict[str, Any]:
    """Replace embedded images (PIL objects or ``{bytes, path}`` dicts) in the ``image`` /
    ``images`` columns, and embedded frames of frame-list videos in ``videos``, by PNG files,
    because LLaMA-Factory reads images and frames from paths."""
    row = dict(row)
    stem = _UNSAFE_NAME.sub("_", f"{source}-{index}")
    for column in ("image", "images"):
        value = row.get(column)
        if isinstance(value, list):
            row[column] = [_image_path(item, image_dir, f"{stem}-{column}-{k}") for k, item in enumerate(value)]
        elif value is not None:
            row[column] = _image_path(value, image_dir, f"{stem}-{column}")
    videos = row.get("videos")
    if isinstance(videos, list):
        row["videos"] = [
            [_image_path(frame, image_dir, f"{stem}-videos-{k}-{f}") for f, frame in enumerate(video)] if isinstance(video, list) else video
            for k, video in enumerate(videos)
        ]
    return row


def _image_path(item: Any, image_dir: Path, stem: str) -> Any:
    if isinstance(item, dict) and item.get("bytes"):
        image = Image.open(io.BytesIO(item["bytes"]))
    elif isinstance(item, dict) and item.get("path"):
        return item["path"]
    elif isinstance(item, Image.Image):
        image = item
    else:
        return item
    image_dir.mkdir(parents=True, exist_ok=True)
    target = image_dir / f"{stem}.png"
    image.save(target, format="PNG")
    return str(target)
