"""Tool efficiency: credit for useful tool use on a correct answer, minus penalties.

Credit is conditional on the answer being right (tool calls that led nowhere earn
nothing, so the policy cannot farm reward by calling tools) and on at least one call
having been useful (valid, successful, not a repeat). Penalties apply whatever the
answer, because malformed, failing, repeated and excessive calls cost time everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepeyes.rewards.config import RewardConfig
from deepeyes.tools.registry import tool_names


@dataclass
class ToolEfficiencyResult:
    score: float  # credit − penalty, clipped to [−1, 1]
    credit: float
    penalty: float
    penalty_breakdown: dict[str, float]


def tool_efficiency(tool_calls: dict[str, int], answer_correct: bool, config: RewardConfig) -> ToolEfficiencyResult:
    """Score ``tool_calls`` (the trajectory's per-kind counts) for one trajectory."""
    total = sum(tool_calls.get(kind, 0) for kind in tool_names())
    invalid, failed, repeated = (tool_calls.get(k, 0) for k in ("invalid", "failed", "repeated"))
    useful = total - failed - repeated
    if not answer_correct:
        credit = 0.0
    elif useful > 0:
        credit = 1.0
    elif total == 0 and invalid == 0:
        credit = config.direct_answer_credit
    else:
        credit = 0.0
    penalties = config.penalties
    breakdown = {
        "invalid": penalties.invalid * invalid,
        "failed": penalties.failed * failed,
        "repeated": penalties.repeated * repeated,
        "excess": penalties.excess * max(0, total - config.max_tool_calls),
    }
    penalty = sum(breakdown.values())
    score = max(-1.0, min(1.0, credit - penalty))
    return ToolEfficiencyResult(score, credit, penalty, breakdown)
