"""Readers and writers for the sample-data file formats (DESIGN §5, ``data/README.md``).

Everything the generator writes goes through here so that two runs with the same seed
produce byte-identical files (fixed PNG settings, sorted JSON keys, no timestamps) and so
that consumers (tests, cold start, RL, evaluation) read the files back the same way.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

#: PNG settings fixed so that an image always encodes to the same bytes.
PNG_COMPRESS_LEVEL = 6


def png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG with fixed settings (no metadata, no optimisation pass)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buffer.getvalue()


def save_png(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))


def png_base64(data: bytes) -> str:
    """Base64 text of PNG bytes, as VLMEvalKit TSVs carry images."""
    return base64.b64encode(data).decode("ascii")


def image_from_base64(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    image.load()
    return image


def dumps(obj: Any) -> str:
    """Canonical JSON text: sorted keys, UTF-8 kept readable, no trailing spaces."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(rows: Iterable[Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[Any]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_tsv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    """Write a VLMEvalKit-style TSV; absent optional cells (e.g. choices) stay empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{column: row.get(column) for column in columns} for row in rows], columns=columns)
    frame.to_csv(path, sep="\t", index=False, lineterminator="\n")


def read_tsv(path: Path) -> pd.DataFrame:
    """Read a TSV back with every cell as text (answers like ``007`` keep their zeros)."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as parquet without pandas metadata, so the bytes depend only on the rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression="snappy")


def read_parquet(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()
