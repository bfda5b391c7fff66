"""DeepEyes rewards: one scoring function for RL, evaluation and the reward server.

The score is a weighted sum of three terms, ``weights = [0.5, 0.3, 0.2]`` by default
(``RewardConfig.weights``, in this order):

* **task completion** (0.5) = the *format* score if an answer was produced and the run
  stopped by answering (not at the turn or token limit), else 0. *Format* is 1 minus
  ``format_violation_penalty`` (0.5) per violation — unbalanced ``<think>``, a turn without
  exactly one complete action, text after ``</answer>``, an answer over the length cap —
  floored at 0.
* **tool efficiency** (0.3) = credit − penalties, clipped to [−1, 1]. Credit is 1 when the
  answer is correct and at least one tool call was useful (valid, succeeded, not a repeat);
  ``direct_answer_credit`` (0) when correct without any call; 0 otherwise. Penalties: per
  invalid, failed and repeated call and per call beyond ``max_tool_calls``.
* **result accuracy** (0.2) = 1 if the answer matches the ground truth (normalised text,
  numeric tolerance, option letter, math-verify, optional LLM judge), else 0.

Entry points: :func:`score_trajectory`, :func:`score_response`, :func:`compute_score`
(verl's custom reward signature), :class:`RewardScorer`, and
``deepeyes.rewards.client.RewardClient`` for the HTTP server. See docs/rewards.md.
"""

from deepeyes.rewards.config import JudgeConfig, RewardConfig, ToolPenalties, load_reward_config
from deepeyes.rewards.payload import PayloadError, ScoreRequest, parse_request
from deepeyes.rewards.scoring import RewardScorer, compute_score, score_response, score_trajectory

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
