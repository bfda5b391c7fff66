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
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import ray
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, AgentLoopWorker


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
    """verl's manager, starting :class:`DeepEyesAgentLoopWorker` actors."""

    agent_loop_workers_class = ray.remote(DeepEyesAgentLoopWorker)
