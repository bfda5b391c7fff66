"""Per-step metrics: what the rollouts did, what they scored, and where the time went.

One flat ``name → number`` record per step goes to ``metrics.jsonl`` (for scripts and
the benchmark) and to TensorBoard (for people); the names are shared by both.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from deepeyes.trajectory import TOOL_KINDS, Trajectory


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def rollout_metrics(trajectories: list[Trajectory], results: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """Reward, accuracy and tool-use statistics of one batch of scored trajectories."""
    scores = [float(r["score"]) for r in results]
    turns = [len(t.turns) for t in trajectories]
    total_turns = max(1, sum(turns))
    metrics = {
        "reward/mean": _mean(scores),
        "reward/std": float(statistics.pstdev(scores)) if len(scores) > 1 else 0.0,
        "reward/max": max(scores, default=0.0),
        "reward/min": min(scores, default=0.0),
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
    }
    for tool in TOOL_KINDS:
        # Share of trajectories that called the tool at least once, and calls per turn.
        metrics[f"tools/{tool}_use_rate"] = _mean([1.0 if getattr(t.tool_calls, tool) else 0.0 for t in trajectories])
        metrics[f"tools/{tool}_call_rate"] = sum(getattr(t.tool_calls, tool) for t in trajectories) / total_turns
    return {prefix + key: value for key, value in metrics.items()}


class MetricsWriter:
    """Appends step records to ``metrics.jsonl`` and mirrors them to TensorBoard."""

    def __init__(self, directory: Path, tensorboard: bool = True):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "metrics.jsonl"
        self._tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(directory / "tensorboard"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tensorboard is not None:
            for name, value in metrics.items():
                self._tensorboard.add_scalar(name, value, step)
            self._tensorboard.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites the steps after its checkpoint)."""
        if not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
