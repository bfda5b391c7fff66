"""Per-dataset trajectory files: appended as samples finish, read back to resume.

A run can be killed at any moment (Ctrl-C, a lost GPU node), so every finished sample is
one complete JSONL line written and flushed at once, and reading back skips, with a warning
naming the file and line, a half-written last line wherever the cut fell (inside a
multi-byte character too) and any other line that is not a trajectory. Samples whose rollout failed (``stop_reason == "error"``) are
not counted as done: a resumed run retries them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import jsonschema

from deepeyes.trajectory import Trajectory, validate
from deepeyes.utils.jsonl import iter_jsonl

logger = logging.getLogger(__name__)


class TrajectoryStore:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def load_finished(self) -> dict[str, dict[str, Any]]:
        """Finished records by trajectory id; rewrites the file without broken or failed lines."""
        if not self.path.is_file():
            return {}
        finished: dict[str, dict[str, Any]] = {}
        dropped = 0
        for number, record, problem in iter_jsonl(self.path):
            if problem is None:
                try:
                    validate(record)
                except jsonschema.ValidationError as exc:
                    problem = f"not a trajectory ({exc.message[:120]})"
            if problem is not None:
                logger.warning("%s line %d skipped, that sample will be re-run: %s", self.path, number, problem)
                dropped += 1
                continue
            if record["stop_reason"] == "error":
                dropped += 1
                continue
            finished[record["id"]] = record
        if dropped or not _ends_with_newline(self.path):  # appends must start on a line of their own
            self._rewrite(list(finished.values()))
        return finished

    def append(self, trajectory: Trajectory) -> dict[str, Any]:
        record = trajectory.to_dict()
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
        return record

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        temporary = self.path.with_suffix(".jsonl.tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temporary, self.path)


def _ends_with_newline(path: Path) -> bool:
    """Whether the file is empty or its last byte is a newline."""
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
