"""DAPO's dynamic sampling for the local engine: keep only groups with signal, refill the batch.

GRPO's advantage of a sample is its reward minus its group's mean (divided by the group's
std), so a group whose ``rollout.n`` rewards are all equal — every sample right, or every
sample wrong — gets advantage 0 everywhere and adds nothing to the policy gradient. DAPO
(Yu et al. 2025, arXiv:2503.14476, §3.2 "Dynamic Sampling") drops such groups and keeps
sampling until the batch holds ``train_batch_size`` groups with signal. The rule and the
names follow verl: a group is dropped when it has more than one sample and the metric's
spread is zero (``verl/trainer/ppo/v1/replay_buffer.py``, ``_dapo_filtered_keys``; the DAPO
recipe's ``std > 0 or len == 1`` keep rule), ``algorithm.filter_groups.max_num_gen_batches``
bounds the generation rounds of one step (the DAPO recipe's ``num_gen_batches``), and each
refill draws exactly the missing number of prompts, as verl's v1 trainer does (``refill_fn``
submits "an exact number of fresh prompts"), so no rolled-out group is thrown away as surplus.

Two things differ from verl, both for a run that must end: at the cap the step trains on the
groups kept so far (the DAPO recipe raises), and the cap must be >= 1 (verl reads 0 as no limit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from deepeyes.rl.config import FilterGroupsConfig
from deepeyes.rl.data import PromptSchedule, RLPrompt

logger = logging.getLogger(__name__)

Batch = TypeVar("Batch")


def constant_groups(group_ids: Sequence[str], values: Sequence[float]) -> set[str]:
    """The groups (ids) with more than one sample whose ``values`` are all equal.

    Equality is exact, as verl's ``np.std(values) == 0.0``, but checked as ``min == max`` so
    that rounding in a mean of identical floats cannot make a constant group look spread.
    """
    if len(group_ids) != len(values):
        raise ValueError(f"{len(group_ids)} group ids for {len(values)} values")
    by_group: dict[str, list[float]] = {}
    for group, value in zip(group_ids, values, strict=True):
        by_group.setdefault(group, []).append(float(value))
    return {group for group, found in by_group.items() if len(found) > 1 and min(found) == max(found)}


class PromptStream:
    """The schedule's prompts one after another, from a position that a checkpoint can save.

    Prompt ``i`` of the stream is prompt ``i % batch_size`` of the schedule's batch
    ``i // batch_size``, so a run that draws ``batch_size`` prompts per step reads exactly
    the batches :meth:`PromptSchedule.batch` gives its steps, and a run that draws more
    (refills) goes on with the next prompts in the same order. Resuming at the saved
    ``position`` repeats and skips nothing.
    """

    def __init__(self, schedule: PromptSchedule, position: int = 0):
        if position < 0:
            raise ValueError(f"prompt stream position must be >= 0, got {position}")
        self.schedule = schedule
        self.position = position
        self._cached: tuple[int, list[RLPrompt]] = (-1, [])

    def _batch(self, index: int) -> list[RLPrompt]:
        if self._cached[0] != index:
            self._cached = (index, self.schedule.batch(index))
        return self._cached[1]

    def take(self, count: int) -> list[RLPrompt]:
        """The next ``count`` prompts; the position moves past them."""
        size = self.schedule.batch_size
        prompts = [self._batch(i // size)[i % size] for i in range(self.position, self.position + count)]
        self.position += count
        return prompts


@dataclass
class Round(Generic[Batch]):
    """One generation round: what was rolled out and which of its groups were kept."""

    batch: Batch
    kept: set[str]
    dropped: set[str]


@dataclass
class FilledBatch(Generic[Batch]):
    """A step's generation rounds; the step trains on the kept groups of every round."""

    wanted: int
    rounds: list[Round[Batch]] = field(default_factory=list)

    @property
    def kept_groups(self) -> int:
        return sum(len(r.kept) for r in self.rounds)

    @property
    def dropped_groups(self) -> int:
        return sum(len(r.dropped) for r in self.rounds)

    def metrics(self) -> dict[str, float]:
        """``filter_groups/kept|dropped|gen_rounds``: groups trained on, groups dropped for zero
        spread (verl v1's ``training/filter_groups/evicted_samples``), generation rounds made
        (the DAPO recipe's ``train/num_gen_batches``)."""
        return {
            "filter_groups/kept": float(self.kept_groups),
            "filter_groups/dropped": float(self.dropped_groups),
            "filter_groups/gen_rounds": float(len(self.rounds)),
        }


def fill_batch(
    wanted: int,
    settings: FilterGroupsConfig,
    take: Callable[[int], list[RLPrompt]],
    generate: Callable[[list[RLPrompt]], Batch],
    group_values: Callable[[Batch, str], tuple[list[str], list[float]]],
) -> FilledBatch[Batch]:
    """Roll out prompts until ``wanted`` groups with signal are kept, or the cap on rounds is hit.

    ``take(k)`` gives the next ``k`` prompts, ``generate(prompts)`` rolls them out and scores
    them, and ``group_values(batch, metric)`` gives each sample's group id and metric value.
    Without ``settings.enable`` this is one round that keeps every group. Each later round
    draws only the groups still missing.
    """
    filled: FilledBatch[Batch] = FilledBatch(wanted)
    while True:
        batch = generate(take(wanted - filled.kept_groups))
        group_ids, values = group_values(batch, settings.metric)
        dropped = constant_groups(group_ids, values) if settings.enable else set()
        filled.rounds.append(Round(batch, kept=set(group_ids) - dropped, dropped=dropped))
        if filled.kept_groups >= wanted or not settings.enable:
            return filled
        if len(filled.rounds) >= settings.max_num_gen_batches:
            logger.warning(
                "filter_groups: %d of %d groups have signal after %d generation rounds (algorithm.filter_groups.max_num_gen_batches)",
                filled.kept_groups, wanted, len(filled.rounds),
            )
            return filled
        logger.info(
            "filter_groups: round %d kept %d, dropped %d groups with %s all equal; rolling out %d more prompts",
            len(filled.rounds), len(filled.rounds[-1].kept), len(dropped), settings.metric, wanted - filled.kept_groups,
        )
