"""Reading JSONL files line by line, with every problem naming the file and line.

One reader for every stage: strict callers (configs, corpora) turn a bad line into an error,
lenient ones (behaviour analysis over logs that a crash may have cut) skip and count it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: How :func:`iter_jsonl` words the problem of a last line cut short (``problem.startswith(TORN_LINE)``).
TORN_LINE = "torn last line"


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield ``(line_number, record, problem)`` for each non-blank line, streaming.

    ``problem`` is ``None`` for a line that parsed; otherwise it says why the line is not JSON
    (or not UTF-8) and ``record`` is ``None``. Lines are decoded one at a time, so a bad byte
    spoils only its own line. A last line without its newline that does not parse is what a
    write cut by a crash leaves, wherever the cut fell (inside a string, a number or a
    multi-byte character): its problem starts with :data:`TORN_LINE`.
    """
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield line_number, json.loads(raw), None
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, digit limits
                reason = f"not JSON ({exc})"[:300]
                torn = not raw.endswith(b"\n")
                yield line_number, None, f"{TORN_LINE}, a write cut short: {reason}" if torn else reason


def iter_jsonl_records(path: Path, error: type[Exception]) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, record)`` for each non-blank line; a bad line raises ``error`` naming ``path:line``."""
    for line_number, record, problem in iter_jsonl(path):
        if problem is not None:
            raise error(f"{path}:{line_number}: {problem}")
        yield line_number, record
