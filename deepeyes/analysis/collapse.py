"""The tool-use collapse alarm: RL that stops calling tools is the failure DeepEyes guards against.

A policy can learn that answering directly scores nearly as well as looking closer, and the
number of tool calls per trajectory then decays towards zero. The alarm fires when the rate stays below
``fraction`` × its starting value for ``patience`` consecutive steps. The RL trainer feeds it
each step's ``tools/calls_per_trajectory`` (:func:`deepeyes.rl.metrics.rollout_metrics`);
the behaviour report replays the same rule over the logged trajectories, so both say the
same thing at the same step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class CollapseAlarm:
    """Tracks one rate over steps; :meth:`update` returns a warning when the rate collapses.

    ``fraction`` (0 < fraction < 1) sets the threshold relative to the first step's value
    (the baseline); ``patience`` (≥ 1) is the number of consecutive steps below it. A
    baseline of 0 has nothing to collapse from and never fires. After firing, the alarm
    re-arms once the rate is back at or above the threshold, so a second collapse warns again.
    """

    fraction: float = 0.5
    patience: int = 3
    baseline: float | None = None
    below: int = 0  # consecutive steps below the threshold so far
    fired_at: list[int] = field(default_factory=list)  # steps at which the alarm fired

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience}")

    @property
    def threshold(self) -> float | None:
        return None if self.baseline is None else self.fraction * self.baseline

    @property
    def collapsed(self) -> bool:
        """True while the rate has been below the threshold for at least ``patience`` steps."""
        return self.below >= self.patience

    def update(self, step: int, rate: float) -> str | None:
        """Record ``rate`` (e.g. tool calls per trajectory) at ``step``; the warning text when the alarm fires now."""
        if self.baseline is None:
            self.baseline = rate
            return None
        threshold = self.fraction * self.baseline
        if self.baseline > 0 and rate < threshold:
            self.below += 1
        else:
            self.below = 0
        if self.below == self.patience:
            self.fired_at.append(step)
            return (
                f"tool-use collapse at step {step}: tool calls per trajectory {rate:.3g} has been below {self.fraction:.0%} of its "
                f"starting value {self.baseline:.3g} (threshold {threshold:.3g}) for {self.patience} consecutive steps"
            )
        return None

    def update_and_log(self, step: int, rate: float) -> str | None:
        """:meth:`update`, logging the warning on this module's logger (what the RL trainer calls)."""
        warning = self.update(step, rate)
        if warning:
            logger.warning(warning)
        return warning
