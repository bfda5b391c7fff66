"""Per-dataset trajectory files: appended as samples finish, read back to resume.

A run can be killed at any moment (Ctrl-C, a lost GPU node), so every finished sample is
one complete JSONL line written and flushed at once, and reading back tolerates a
half-written last line. Samples whose rollout failed (``stop_reason == "error"``) are
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
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                validate(record)
            except (json.JSONDecodeError, jsonschema.ValidationError) as exc:
                logger.warning("%s line %d is not a complete trajectory (%s); that sample will be re-run", self.path, number, str(exc)[:120])
                dropped += 1
                continue
            if record["stop_reason"] == "error":
                dropped += 1
                continue
            finished[record["id"]] = record
        if dropped:
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
