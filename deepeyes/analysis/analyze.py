"""Analyse named runs into ``behavior_summary.json``, figures, the HTML/PDF report and the browser.

    analyze({"base": "outputs/quickstart/eval_base", "rl": "outputs/quickstart/rl"}, Path("outputs/behavior"))

Each run is streamed once through :class:`~deepeyes.analysis.aggregate.RunAggregator` (the
counters) and :class:`~deepeyes.analysis.browser.ExampleKeeper` (a bounded set of example
trajectories), so a run of any size is analysed in memory bounded by its number of
categories, steps and distinct decision paths.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deepeyes.analysis.aggregate import AnalysisConfig, RunAggregator
from deepeyes.analysis.browser import ExampleKeeper, write_browser
from deepeyes.analysis.sources import (
    ReadStats,
    iter_records,
    iter_step_metrics,
    resolve_run,
)
from deepeyes.config import to_dict
from deepeyes.trajectory import SCHEMA_VERSION

logger = logging.getLogger(__name__)

SUMMARY_FILE = "behavior_summary.json"
#: Overall numbers compared across runs; per-tool use rates are added for every tool seen.
COMPARED: tuple[str, ...] = (
    "n", "accuracy", "any_tool_rate", "tool_calls_per_trajectory", "failure_rate", "repeat_rate", "invalid_rate", "mean_turns", "tool_choice_match_rate",
)


def analyze_run(name: str, path: str | Path, out: Path, config: AnalysisConfig, show_progress: bool = False) -> dict[str, Any]:
    """One run's block of the summary; writes its browser pages under ``out``.

    Raises :class:`~deepeyes.analysis.sources.RunNotFoundError` or
    :class:`~deepeyes.analysis.sources.SchemaVersionError`.
    """
    source = resolve_run(name, path)
    stats = ReadStats()
    aggregator = RunAggregator(config)
    keeper = ExampleKeeper(config.examples_per_group)
    for record in tqdm(iter_records(source, stats, config.full_validation), desc=name, unit="traj", disable=not show_progress):
        keeper.add(record, aggregator.add(record))
    step_metrics = list(iter_step_metrics(source.metrics_file, stats)) if source.metrics_file else []
    if stats.malformed:
        logger.warning("run %s: %d malformed lines skipped", name, stats.malformed)
    if not stats.records:
        logger.warning("run %s: no trajectories in %s", name, source.path)
    return {
        "source": source.describe(),
        "read": stats.to_dict(),
        "empty": stats.records == 0,
        **aggregator.summary(step_metrics),
        "browser": write_browser(out, name, keeper),
    }


def _flat(run: dict[str, Any]) -> dict[str, float | None]:
    overall = run["overall"]
    values = {key: overall.get(key) for key in COMPARED}
    values["tool_choice_match_rate"] = run["tool_choice"]["overall"]["match_rate"]
    for tool, rate in (overall.get("tool_use_rate") or {}).items():
        values[f"tool_use_rate/{tool}"] = rate
    return values


def compare(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Overall numbers per run and their deltas against the first run."""
    tools: list[str] = []
    for run in runs.values():
        tools.extend(t for t in run["tools"] if t not in tools)
    flat = {name: _flat(run) for name, run in runs.items()}
    metrics = [*COMPARED, *(f"tool_use_rate/{t}" for t in tools)]
    baseline = next(iter(runs))
    base = flat[baseline]

    def delta(value: float | None, reference: float | None) -> float | None:
        return None if value is None or reference is None else value - reference

    return {
        "baseline": baseline,
        "tools": tools,
        "metrics": metrics,
        "runs": {name: {m: values.get(m) for m in metrics} for name, values in flat.items()},
        "deltas": {name: {m: delta(values.get(m), base.get(m)) for m in metrics} for name, values in flat.items()},
    }


def analyze(runs: dict[str, str | Path], out: str | Path, config: AnalysisConfig | None = None, show_progress: bool = False) -> dict[str, Any]:
    """Analyse ``runs`` (name → run path) and write every output under ``out``; returns the summary."""
    from deepeyes.analysis.report import (  # matplotlib only when writing
        REPORT_HTML,
        REPORT_PDF,
        write_report,
    )

    if not runs:
        raise ValueError("no runs to analyse")
    config = config or AnalysisConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = {name: analyze_run(name, path, out, config, show_progress) for name, path in runs.items()}
    summary: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema_version": SCHEMA_VERSION,
        "config": to_dict(config),
        "runs": blocks,
        "comparison": compare(blocks),
    }
    summary["figures"] = write_report(summary, out)
    summary["outputs"] = {"html": REPORT_HTML, "pdf": REPORT_PDF, "summary": SUMMARY_FILE}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
