"""Where a run's trajectories live, and a streaming reader that survives bad lines.

A *run* is one of (DESIGN §5, the trajectory JSONL shared by every stage):

* an evaluation output folder (``OUTPUT_REPORT``): ``trajectories/<dataset>.jsonl``;
* an RL output folder (``output.dir``): ``trajectories.jsonl`` plus ``metrics.jsonl``;
* a trajectory JSONL file.

Runs can hold hundreds of thousands of trajectories, so records are yielded one line at a
time and never collected. A line that is not a trajectory is logged with its file and line
number and counted, not fatal; a record of another ``schema_version`` stops the analysis
with :class:`SchemaVersionError`, since its fields may mean something else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from deepeyes.trajectory import SCHEMA_VERSION, schema, validate
from deepeyes.utils.jsonl import iter_jsonl

logger = logging.getLogger(__name__)

RunKind = Literal["eval", "rl", "jsonl"]
RL_TRAJECTORIES = "trajectories.jsonl"
RL_METRICS = "metrics.jsonl"
EVAL_TRAJECTORY_DIR = "trajectories"
#: Malformed lines listed by name in the summary (all of them are counted).
MAX_LISTED_PROBLEMS = 20


class RunNotFoundError(FileNotFoundError):
    """The run path does not exist or holds no trajectory files of a known layout."""


class SchemaVersionError(ValueError):
    """A trajectory was written under another schema version than this analysis reads."""


@dataclass
class RunSource:
    """One named run: its trajectory files (read in order) and, for RL, its step metrics."""

    name: str
    path: Path
    kind: RunKind
    files: list[Path]
    metrics_file: Path | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "files": [str(f) for f in self.files],
            "metrics_file": str(self.metrics_file) if self.metrics_file else None,
        }


def resolve_run(name: str, path: str | Path) -> RunSource:
    """Find the trajectory files of ``path`` (eval folder, RL folder or JSONL file).

    Raises :class:`RunNotFoundError` when ``path`` is missing or is a folder of neither layout.
    A folder of a known layout whose files are absent or empty is a valid, empty run.
    """
    path = Path(path)
    if path.is_file():
        return RunSource(name, path, "jsonl", [path])
    if not path.is_dir():
        raise RunNotFoundError(f"run {name!r}: {path} does not exist")
    if (path / RL_TRAJECTORIES).is_file() or (path / RL_METRICS).is_file():
        files = [path / RL_TRAJECTORIES] if (path / RL_TRAJECTORIES).is_file() else []
        metrics = path / RL_METRICS if (path / RL_METRICS).is_file() else None
        return RunSource(name, path, "rl", files, metrics)
    if (path / EVAL_TRAJECTORY_DIR).is_dir():
        return RunSource(name, path, "eval", sorted((path / EVAL_TRAJECTORY_DIR).glob("*.jsonl")))
    raise RunNotFoundError(
        f"run {name!r}: {path} is neither an evaluation output folder ({EVAL_TRAJECTORY_DIR}/*.jsonl), "
        f"an RL output folder ({RL_TRAJECTORIES}, {RL_METRICS}) nor a trajectory JSONL file"
    )


@dataclass
class ReadStats:
    """What the reader met: good records, skipped lines, and the first few problems by place."""

    records: int = 0
    malformed: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, file: Path, line: int, error: str) -> None:
        self.malformed += 1
        logger.warning("%s line %d skipped: %s", file, line, error)
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append({"file": str(file), "line": line, "error": error})

    def to_dict(self) -> dict[str, Any]:
        return {"trajectories": self.records, "malformed_lines": self.malformed, "malformed_examples": self.problems}


_REQUIRED = tuple(schema()["required"])


def _shape_error(record: Any) -> str | None:
    """A cheap structural check of the fields the analysis reads (full validation is opt-in)."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(record["turns"], list) or not isinstance(record["tool_calls"], dict):
        return "turns must be a list and tool_calls an object"
    for turn in record["turns"]:
        if not isinstance(turn, dict) or not isinstance(turn.get("action"), dict) or "kind" not in turn["action"]:
            return "a turn lacks its action"
    return None


def iter_records(source: RunSource, stats: ReadStats, full_validation: bool = False) -> Iterator[dict[str, Any]]:
    """Yield the trajectory records of ``source`` one at a time, counting them in ``stats``.

    Malformed lines (bad JSON, missing fields, or — with ``full_validation`` — any breach of
    ``trajectory.schema.json``) are logged as ``<file> line <n> skipped: <why>`` and counted.
    Raises :class:`SchemaVersionError` at the first record whose ``schema_version`` differs
    from :data:`deepeyes.trajectory.SCHEMA_VERSION`.
    """
    for file in source.files:
        for number, record, problem in iter_jsonl(file):
            if problem is not None:
                stats.skip(file, number, problem)
                continue
            if isinstance(record, dict) and "schema_version" in record and record["schema_version"] != SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{file} line {number}: trajectory schema_version {record['schema_version']!r}, "
                    f"but this analysis reads version {SCHEMA_VERSION} (deepeyes/trajectory.schema.json); "
                    "analyse it with the DeepEyes version that wrote it"
                )
            problem = _shape_error(record)
            if problem is None and full_validation:
                try:
                    validate(record)
                except jsonschema.ValidationError as exc:
                    problem = f"breaks the trajectory schema ({exc.message})"
            if problem is not None:
                stats.skip(file, number, problem)
                continue
            stats.records += 1
            yield record


def iter_step_metrics(path: Path, stats: ReadStats) -> Iterator[dict[str, Any]]:
    """The RL trainer's per-step records (``{"step": n, name: value, ...}``), bad lines skipped."""
    for number, record, problem in iter_jsonl(path):
        if problem is None and (not isinstance(record, dict) or not isinstance(record.get("step"), int)):
            problem = "a metrics record needs an integer 'step'"
        if problem is not None:
            stats.skip(path, number, problem)
            continue
        yield record
