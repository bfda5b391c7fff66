"""verl's agent-loop manager and worker, telling our agent loop which step and sample it rolls out.

verl's ``AgentLoopWorker.generate_sequences`` knows the trainer's step (``meta_info["global_steps"]``)
and each sample's place in its group (``rollout_n``): it hands both to ``_run_agent_loop`` as
``trajectory`` (``verl/experimental/agent_loop/agent_loop.py``, ``get_trajectory_info``), but not
to the agent loop's ``run``. Our trajectories need them — ``metadata.step`` is what the behaviour
report's per-step view and the tool-collapse alarm group by, and ``id`` ``uid#sample`` is what the
local engine writes — so :class:`DeepEyesAgentLoopWorker` puts them in a context variable for
the duration of one trajectory, which :class:`~deepeyes.rl.verl_agent_loop.DeepEyesAgentLoop` reads.
verl starts the worker through its extension point for the manager class
(``actor_rollout_ref.rollout.agent.agent_loop_manager_class``; the manager's
``agent_loop_workers_class`` is the Ray actor class it starts, ``AgentLoopManager.__init__``).

The manager also runs the tool-use collapse alarm live, as the local engine does: after each
training step's rollouts it feeds the alarm the step's mean tool calls per trajectory (the
``tool_call_counts`` our agent loop hands verl, the series the local engine feeds it as
``tools/calls_per_trajectory``). The alarm's settings reach verl's processes through the
environment (:func:`collapse_environment`, set by :mod:`deepeyes.rl.verl_launch`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, AgentLoopWorker
from verl.protocol import DataProto
from verl.utils.ray_utils import auto_await

from deepeyes.analysis.collapse import CollapseAlarm

logger = logging.getLogger(__name__)

#: ``trainer.collapse_fraction`` / ``trainer.collapse_patience`` in verl's processes.
COLLAPSE_FRACTION_ENV = "DEEPEYES_COLLAPSE_FRACTION"
COLLAPSE_PATIENCE_ENV = "DEEPEYES_COLLAPSE_PATIENCE"


def collapse_environment(fraction: float, patience: int) -> dict[str, str]:
    """The variables that give verl's agent-loop manager the run's collapse-alarm settings."""
    return {COLLAPSE_FRACTION_ENV: repr(float(fraction)), COLLAPSE_PATIENCE_ENV: str(int(patience))}


def collapse_alarm_from(environ: Mapping[str, str]) -> CollapseAlarm | None:
    """The alarm :func:`collapse_environment` describes; None when the variables are not set
    (verl started by hand, without our launch).

    Raises:
        ValueError: a variable is set but is no number, or the settings are out of range.
    """
    if COLLAPSE_FRACTION_ENV not in environ or COLLAPSE_PATIENCE_ENV not in environ:
        return None
    return CollapseAlarm(float(environ[COLLAPSE_FRACTION_ENV]), int(environ[COLLAPSE_PATIENCE_ENV]))


@dataclass(frozen=True)
class RolloutSlot:
    """Where one trajectory sits in training: verl's global step (1-based) and its sample in the group."""

    step: int
    sample: int


_SLOT: ContextVar[RolloutSlot | None] = ContextVar("deepeyes_rollout_slot", default=None)


def current_slot() -> RolloutSlot | None:
    """The slot of the trajectory being run on this task; None outside :func:`rollout_slot`."""
    return _SLOT.get()


@contextmanager
def rollout_slot(step: int, sample: int) -> Iterator[RolloutSlot]:
    """Mark the code inside (one trajectory's task) as ``sample`` of its group at ``step``."""
    slot = RolloutSlot(step=step, sample=sample)
    token = _SLOT.set(slot)
    try:
        yield slot
    finally:
        _SLOT.reset(token)


class DeepEyesAgentLoopWorker(AgentLoopWorker):
    """verl's worker, with each trajectory's step and sample set while its agent loop runs.

    ``_run_agent_loop`` runs as one asyncio task per trajectory, so the context variable set
    here is that trajectory's alone.
    """

    async def _run_agent_loop(self, sampling_params: dict[str, Any], trajectory: dict[str, Any], **kwargs: Any) -> Any:
        with rollout_slot(int(trajectory["step"]), int(trajectory["rollout_n"])):
            return await super()._run_agent_loop(sampling_params, trajectory, **kwargs)


class DeepEyesAgentLoopManager(AgentLoopManager):
    """verl's manager, starting :class:`DeepEyesAgentLoopWorker` actors and running the collapse alarm."""

    agent_loop_workers_class = ray.remote(DeepEyesAgentLoopWorker)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.collapse_alarm = collapse_alarm_from(os.environ)

    @auto_await
    async def generate_sequences(self, prompts: DataProto) -> DataProto:
        """verl's rollouts of one batch; a training batch's mean tool calls then go to the alarm,
        which logs a warning at the step the rate collapses (validation batches are not counted)."""
        output = await super().generate_sequences(prompts)
        counts = output.non_tensor_batch.get("tool_call_counts")
        if self.collapse_alarm is not None and not prompts.meta_info.get("validate", False) and counts is not None and len(counts):
            if any(count is None for count in counts):  # a foreign agent loop's outputs carry no count
                logger.warning("collapse alarm: some rollouts of step %s carry no tool_call_counts; step skipped", prompts.meta_info.get("global_steps"))
            else:
                self.collapse_alarm.update_and_log(int(prompts.meta_info["global_steps"]), float(np.mean(counts.astype(float))))
        return output
