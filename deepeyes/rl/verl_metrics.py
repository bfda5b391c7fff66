"""A verl run's ``metrics.jsonl``: the local engine's step records, from what verl and our hook logged.

verl's trainer logs its metrics through its own tracking; the ``file`` backend (always on in
our launch) writes ``{"step": n, "data": {...}}`` records to ``tracking.jsonl``. Our reward hook
logs every scored trajectory, with ``metadata.step``, to ``trajectories.jsonl``
(:mod:`deepeyes.rl.verl_reward`). After verl exits, :func:`write_step_metrics` joins the two into
flat records — verl's metrics plus :func:`deepeyes.rl.metrics.rollout_metrics` of the step's
trajectories (reward components, tool use, the tool-collapse series) — in the file the behaviour
report reads, so a verl run is reported as a local one is. verl's own values win where both have
a name (``critic/score/*``, ``tool_call_counts/*``). The collapse alarm itself runs live, inside
verl's agent-loop manager (:class:`deepeyes.rl.verl_worker.DeepEyesAgentLoopManager`).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from deepeyes.rl.metrics import (
    METRICS_FILE,
    TRACKING_FILE,
    MetricsWriter,
    rollout_metrics,
)
from deepeyes.rl.verl_reward import TRAJECTORIES_FILE
from deepeyes.trajectory import Trajectory, read_jsonl

logger = logging.getLogger(__name__)


def _scored_by_step(path: Path) -> dict[int, list[Trajectory]]:
    steps: dict[int, list[Trajectory]] = defaultdict(list)
    if path.is_file():
        for trajectory in read_jsonl(path):
            step = trajectory.metadata.get("step")
            if isinstance(step, int) and trajectory.reward is not None:
                steps[step].append(trajectory)
    return steps


def write_step_metrics(run_dir: Path) -> Path | None:
    """Rewrite ``run_dir/metrics.jsonl`` from verl's ``tracking.jsonl`` and the scored trajectories.

    Returns the file, or None when verl logged no step. The file is rewritten whole: verl's file
    backend starts its own file over when a run starts (resumed runs included), so both hold the
    same steps.
    """
    tracking = run_dir / TRACKING_FILE
    if not tracking.is_file():
        return None
    records = [json.loads(line) for line in tracking.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        return None
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    writer = MetricsWriter(run_dir)
    scored = _scored_by_step(run_dir / TRAJECTORIES_FILE)
    for record in records:
        step = int(record["step"])
        trajectories = scored.get(step, [])
        ours = rollout_metrics(trajectories, [t.reward for t in trajectories]) if trajectories else {}  # type: ignore[misc]
        metrics = {**ours, **{k: v for k, v in record["data"].items() if isinstance(v, (int, float))}}
        writer.write(step, metrics)
    logger.info("verl run: %d step records in %s", len(records), writer.path)
    return writer.path
