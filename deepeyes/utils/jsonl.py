"""Reading user-supplied JSONL files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl_records(path: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` for each non-blank line; bad JSON raises ``error`` naming ``path:line``."""
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield line_number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{line_number}: not valid JSON: {exc}") from exc
