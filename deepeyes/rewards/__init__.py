"""DeepEyes rewards: one scoring function for RL, evaluation and the reward server.

``RewardConfig.preset`` picks how the components combine (``deepeyes.rewards.presets``):
``seed`` (default) ``0.5 · task_completion + 0.3 · tool_efficiency + 0.2 · accuracy``
(``RewardConfig.weights``) with completion and tool credit paid only for a correct answer;
``deepeyes_v2`` ``0.8 · accuracy + 0.2 · format − search penalty``; ``deepeyes_v1``
``0.8 · accuracy + 0.2 · format_term + 1.2 · [correct and a tool was used]``.

Entry points: :func:`score_trajectory`, :func:`score_response`, :func:`compute_score`
(verl's custom reward signature), :class:`RewardScorer`, and
``deepeyes.rewards.client.RewardClient`` for the HTTP server. See docs/rewards.md.
"""

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
