"""Per-step metrics under verl's names, logged through verl's own tracking, plus ``metrics.jsonl``.

Both engines log a step the same way. Where verl has a name for a figure, the figure uses it
(``critic/score/mean``, ``response_length/*``, ``actor/*``, ``timing_s/gen|reward|update_actor|step``,
``timing_s/agent_loop/generate_sequences|tool_calls/*``, ``tool_call_counts/*``: ``verl/trainer/ppo/metric_utils.py``
``compute_data_metrics`` / ``compute_timing_metrics`` and ``verl/experimental/agent_loop/agent_loop.py``
``AgentLoopManager._performance_metrics``); what only DeepEyes measures keeps its own family
(``reward/*`` components, ``rollout/*``, ``tools/*``). ``trainer.loggers`` is verl's backend list
(``verl.utils.tracking.Tracking``: console, tensorboard, wandb, mlflow, swanlab, file, …), so a
logger means the same on both engines.

``metrics.jsonl`` is written beside the trackers in both engines: one flat
``{"step": n, name: value}`` record per step, which the behaviour report and the learning
report read. verl's ``file`` backend is not that file: it nests the values
(``{"step": n, "data": {...}}``) and truncates its file when opened, so a resumed run would lose
the steps before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from deepeyes.rl.config import RLSetupError
from deepeyes.trajectory import TOOL_KINDS, Trajectory

METRICS_FILE = "metrics.jsonl"
#: Where verl's ``file`` backend writes (``VERL_FILE_LOGGER_PATH``), in the run folder of either engine.
TRACKING_FILE = "tracking.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def _spread(name: str, values: list[float]) -> dict[str, float]:
    """``name/mean|max|min``, as verl reports a per-sample figure."""
    return {f"{name}/mean": _mean(values), f"{name}/max": max(values, default=0.0), f"{name}/min": min(values, default=0.0)}


def rollout_metrics(trajectories: list[Trajectory], results: list[Mapping[str, Any]], prefix: str = "") -> dict[str, float]:
    """Score, reward components and tool use of one batch of scored trajectories.

    ``critic/score/*`` is verl's name for the sequence reward (verl's ``critic/rewards/*`` is
    the same after the in-reward KL penalty, which neither engine applies); ``critic/score/std``
    is ours. The agent-loop times are each trajectory's own, as verl's agent-loop workers report them.
    """
    scores = [float(r["score"]) for r in results]
    turns = [len(t.turns) for t in trajectories]
    total_turns = max(1, sum(turns))
    metrics = {
        **_spread("critic/score", scores),
        "critic/score/std": float(statistics.pstdev(scores)) if len(scores) > 1 else 0.0,
        "reward/accuracy": _mean([float(r["accuracy"]) for r in results]),
        "reward/format": _mean([float(r["format"]) for r in results]),
        "reward/tool_efficiency": _mean([float(r["tool_efficiency"]) for r in results]),
        "reward/task_completion": _mean([float(r["task_completion"]) for r in results]),
        "rollout/turns": _mean([float(n) for n in turns]),
        "rollout/answered": _mean([1.0 if t.stop_reason == "answer" else 0.0 for t in trajectories]),
        "rollout/response_tokens": _mean([float(sum(turn.completion_tokens for turn in t.turns)) for t in trajectories]),
        "tools/invalid_call_rate": sum(t.tool_calls.invalid for t in trajectories) / total_turns,
        "tools/failed_call_rate": sum(t.tool_calls.failed for t in trajectories) / total_turns,
        "tools/calls_per_trajectory": _mean([float(t.tool_calls.total) for t in trajectories]),
        # The same figure under verl's name (``compute_data_metrics``), which a verl run logs live.
        **_spread("tool_call_counts", [float(t.tool_calls.total) for t in trajectories]),
        **_spread("timing_s/agent_loop/generate_sequences", [float(t.timing.get("generation_s", 0.0)) for t in trajectories]),
        **_spread("timing_s/agent_loop/tool_calls", [float(t.timing.get("tools_s", 0.0)) for t in trajectories]),
    }
    for tool in TOOL_KINDS:
        # Share of trajectories that called the tool at least once, and calls per turn.
        metrics[f"tools/{tool}_use_rate"] = _mean([1.0 if getattr(t.tool_calls, tool) else 0.0 for t in trajectories])
        metrics[f"tools/{tool}_call_rate"] = sum(getattr(t.tool_calls, tool) for t in trajectories) / total_turns
    return {prefix + key: value for key, value in metrics.items()}


class MetricsWriter:
    """Appends flat step records to ``metrics.jsonl`` (what the behaviour and learning reports read)."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / METRICS_FILE

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites the steps after its checkpoint; a
        negative ``step`` empties the file). A torn last line is dropped with a warning naming
        the file and line (:func:`deepeyes.rl.checkpoint.truncate_log`)."""
        if step < 0:
            if self.path.is_file():
                self.path.write_bytes(b"")
            return
        from deepeyes.rl.checkpoint import truncate_log

        truncate_log(self.path, lambda record: record["step"] <= step)


def tracker_environment(directory: Path) -> dict[str, str]:
    """Where verl's trackers write in a run folder: ``TENSORBOARD_DIR`` and ``VERL_FILE_LOGGER_PATH``
    (read by ``verl.utils.tracking``'s TensorBoard and file backends)."""
    return {"TENSORBOARD_DIR": str(directory / TENSORBOARD_DIR), "VERL_FILE_LOGGER_PATH": str(directory / TRACKING_FILE)}


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` inside the block only (verl's backends read them when built)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_loggers(loggers: Sequence[str]) -> None:
    """Fail at start-up, naming the setting, for a backend verl's tracking does not have."""
    from verl.utils.tracking import Tracking

    unknown = [name for name in loggers if name not in Tracking.supported_backend]
    if unknown:
        raise RLSetupError(f"trainer.loggers: unknown logger(s) {unknown}; verl's tracking has {Tracking.supported_backend}")


class StepLogger:
    """One step record to ``metrics.jsonl`` and to verl's ``Tracking`` backends (``trainer.loggers``).

    The backends are verl's own classes, configured as verl configures them: TensorBoard and the
    file backend through the environment (:func:`tracker_environment`, set for this run folder
    while they are built), wandb through its own (``WANDB_MODE``, ``WANDB_DIR``, ``WANDB_ENTITY``).
    """

    def __init__(self, directory: Path, loggers: Sequence[str], project_name: str, experiment_name: str, config: dict[str, Any]):
        from verl.utils.tracking import Tracking

        check_loggers(loggers)
        self.file = MetricsWriter(directory)
        with _environment(tracker_environment(directory)):
            self.tracking = Tracking(project_name, experiment_name, default_backend=list(loggers), config=config)

    @property
    def path(self) -> Path:
        return self.file.path

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        self.file.write(step, metrics)
        self.tracking.log(dict(metrics), step)

    def close(self) -> None:
        self.tracking.finish()
