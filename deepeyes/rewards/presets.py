"""How the reward components combine into one score: the named presets.

The components (accuracy, format, task completion, tool efficiency, per-kind call counts)
are computed the same way for every preset; a preset only fixes the formula that turns
them into the scalar the policy optimises. Keeping the formulas here, apart from the
component code, lets an experiment switch recipe with one config key
(``RewardConfig.preset``) and lets every stage report the same breakdown.

Presets (docs/rewards.md gives a worked example of each):

* ``seed`` — the seed's weights, ``0.5 · task_completion + 0.3 · tool_efficiency + 0.2 · accuracy``,
  where task completion and tool credit are only paid for a correct answer.
* ``deepeyes_v2`` — DeepEyesV2's released recipe: ``0.8 · accuracy + 0.2 · format``, minus
  ``search_penalty`` when the trajectory called a search tool (text or image search). The
  released reward routes rows by ``data_source`` (its ``verl/utils/reward_score/__init__.py``):
  the search penalty belongs to ``search`` rows only (``perception`` and ``reason`` rows pay
  none), and the ``vstar-test`` validation rows score accuracy alone. Rows of any other
  source are scored as ``search`` rows, so a search a task did not need still costs.
* ``deepeyes_v1`` — DeepEyes v1's released reward: ``0.8 · accuracy + 0.2 · format_term +
  tool_bonus · [correct and a tool was called]`` with ``format_term = −1`` on any format
  fault, else 0, and ``tool_bonus = 1.2`` (Visual-Agent/DeepEyes, ``vl_agent.py``).
* ``grounding`` — VLM-R1's REC reward (``grpo_rec.py``): ``accuracy + format``, accuracy
  being the IoU reward of :mod:`deepeyes.rewards.grounding` (1 when IoU ≥ 0.5, or the IoU
  itself with ``grounding.continuous``). A row whose ``data_source`` names a grounding data
  set (:func:`~deepeyes.rewards.grounding.is_grounding_source`: ``refcoco``, ``refcoco+``,
  ``refcocog``, ``refgta``, ``rec``, …) is scored with it whatever the configured preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepeyes.rewards.config import PRESETS
from deepeyes.rewards.grounding import is_grounding_source
from deepeyes.tools.registry import REGISTRY

#: Accuracy and format weights of both published DeepEyes recipes.
PUBLISHED_ACCURACY_WEIGHT = 0.8
PUBLISHED_FORMAT_WEIGHT = 0.2
_SEARCH_KINDS = ("search", "image_search")
#: DeepEyesV2's published data sources and how its released reward treats each.
NO_SEARCH_PENALTY_SOURCES = frozenset({"perception", "reason"})
ACCURACY_ONLY_SOURCES = frozenset({"vstar-test"})


@dataclass(frozen=True)
class Components:
    """Every reward component of one trajectory, each already computed.

    ``accuracy`` and ``format`` in [0, 1]; ``task_completion`` in [0, 1]; ``tool_efficiency``
    in [−1, 1]; ``format_faults`` the number of format violations; ``tool_calls`` the
    per-kind counts (``code``, ``search``, ``image_search``, ``invalid``, ``failed``, ``repeated``).
    """

    accuracy: float
    format: float
    task_completion: float
    tool_efficiency: float
    format_faults: int
    tool_calls: dict[str, int]


def combine(
    preset: str,
    components: Components,
    *,
    weights: dict[str, float],
    search_penalty: float,
    tool_bonus: float,
    data_source: str | None = None,
) -> dict[str, float]:
    """The weighted terms of ``preset``; the score is their sum. ``data_source`` routes ``deepeyes_v2``.

    Returns ``{term name: weighted value}``. Raises ``ValueError`` for an unknown preset.
    """
    if preset == "grounding" or is_grounding_source(data_source):
        return {"accuracy": components.accuracy, "format": components.format}
    if preset == "seed":
        return {
            "task_completion": weights["task_completion"] * components.task_completion,
            "tool_efficiency": weights["tool_efficiency"] * components.tool_efficiency,
            "accuracy": weights["accuracy"] * components.accuracy,
        }
    if preset == "deepeyes_v2":
        if data_source in ACCURACY_ONLY_SOURCES:
            return {"accuracy": components.accuracy}
        searched = any(components.tool_calls.get(kind, 0) > 0 for kind in _SEARCH_KINDS)
        if data_source in NO_SEARCH_PENALTY_SOURCES:
            searched = False
        return {
            "accuracy": PUBLISHED_ACCURACY_WEIGHT * components.accuracy,
            "format": PUBLISHED_FORMAT_WEIGHT * components.format,
            "search_penalty": -search_penalty if searched else 0.0,
        }
    if preset == "deepeyes_v1":
        used_tool = any(components.tool_calls.get(kind, 0) > 0 for kind in REGISTRY.names())
        correct = components.accuracy > 0.5
        return {
            "accuracy": PUBLISHED_ACCURACY_WEIGHT * components.accuracy,
            "format": PUBLISHED_FORMAT_WEIGHT * (-1.0 if components.format_faults else 0.0),
            "tool_bonus": tool_bonus if (correct and used_tool) else 0.0,
        }
    raise ValueError(f"unknown reward preset {preset!r}; known: {list(PRESETS)}")
