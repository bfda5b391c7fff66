"""DeepEyes rewards: one scoring function for RL, evaluation and the reward server.

``RewardConfig.preset`` picks how the components combine (``deepeyes.rewards.presets``):
``seed`` (default) ``0.5 · task_completion + 0.3 · tool_efficiency + 0.2 · accuracy``
(``RewardConfig.weights``) with completion and tool credit paid only for a correct answer;
``deepeyes_v2`` ``0.8 · accuracy + 0.2 · format − search penalty``; ``deepeyes_v1``
``0.8 · accuracy + 0.2 · format_term + 1.2 · [correct and a tool was used]``.

Entry points: :func:`score_trajectory`, :func:`score_response`, :func:`compute_score`
(verl's custom reward signature), :class:`RewardScorer`, and
``deepeyes.rewards.client.RewardClient`` for the HTTP server. See docs/rewards.md.

The names below load on first use (PEP 562): the scoring modules pull in the tool registry
(and with it torch), which the maths check workers (``deepeyes.rewards.pool``) must not pay
for when they import ``deepeyes.rewards.maths_worker``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepeyes.rewards.config import (
        JudgeConfig,
        RewardConfig,
        ToolPenalties,
        load_reward_config,
    )
    from deepeyes.rewards.payload import PayloadError, ScoreRequest, parse_request
    from deepeyes.rewards.scoring import (
        RewardScorer,
        compute_score,
        score_response,
        score_trajectory,
    )

_EXPORTS = {
    "JudgeConfig": "deepeyes.rewards.config",
    "RewardConfig": "deepeyes.rewards.config",
    "ToolPenalties": "deepeyes.rewards.config",
    "load_reward_config": "deepeyes.rewards.config",
    "PayloadError": "deepeyes.rewards.payload",
    "ScoreRequest": "deepeyes.rewards.payload",
    "parse_request": "deepeyes.rewards.payload",
    "RewardScorer": "deepeyes.rewards.scoring",
    "compute_score": "deepeyes.rewards.scoring",
    "score_response": "deepeyes.rewards.scoring",
    "score_trajectory": "deepeyes.rewards.scoring",
}

__all__ = [
    "JudgeConfig",
    "PayloadError",
    "RewardConfig",
    "RewardScorer",
    "ScoreRequest",
    "ToolPenalties",
    "compute_score",
    "load_reward_config",
    "parse_request",
    "score_response",
    "score_trajectory",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
