"""The reward: components, their weighted sum, and the entry points every stage calls.

The components are formed here; ``RewardConfig.preset`` picks the formula that combines
them (:mod:`deepeyes.rewards.presets`; default ``seed``: ``0.5 · task_completion + 0.3 ·
tool_efficiency + 0.2 · accuracy``); docs/rewards.md states how each term is formed. The RL trainer, the evaluation harness, verl's reward hook and the
reward server all end in :meth:`RewardScorer.score`, so a trajectory gets one score
wherever it is scored.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deepeyes.rewards.accuracy import answer_length_cap, evaluate_accuracy
from deepeyes.rewards.config import RewardConfig, load_reward_config
from deepeyes.rewards.grounding import BoxAccuracy, box_accuracy, is_grounding_request
from deepeyes.rewards.judge import LLMJudge
from deepeyes.rewards.payload import (
    TRAJECTORY_KEY,
    ScoreRequest,
    request_from_response,
    request_from_trajectory,
)
from deepeyes.rewards.presets import Components, combine
from deepeyes.rewards.tool_efficiency import tool_efficiency
from deepeyes.trajectory import Trajectory
from deepeyes.wire import FormatViolation, answer_action, check_turns, format_score

#: verl's hook reads the reward config from this file when no ``config_path`` kwarg is given.
CONFIG_ENV = "DEEPEYES_REWARD_CONFIG"
_PRECISION = 6


class RewardScorer:
    """Scores requests with one config; holds the judge client so batches can share it."""

    def __init__(self, config: RewardConfig | None = None):
        self.config = config or RewardConfig()
        self.judge = LLMJudge(self.config.judge) if self.config.judge.enabled else None

    def score(self, request: ScoreRequest) -> dict[str, Any]:
        config = self.config
        if is_grounding_request(request, config.preset):  # a box answer, graded by IoU
            accuracy = box_accuracy(request, config.grounding)
        else:
            accuracy = evaluate_accuracy(
                request.answer,
                request.ground_truths,
                config,
                answer_type=request.answer_type,
                choices=request.choices,
                question=request.question,
                judge=self.judge,
            )
        violations = check_turns(request.turn_texts)
        if accuracy.method == "too_long":
            violations.append(FormatViolation(len(request.turn_texts) - 1, "answer_too_long"))
        if isinstance(accuracy, BoxAccuracy) and accuracy.malformed and request.answer:
            violations.append(FormatViolation(len(request.turn_texts) - 1, "answer_not_a_box"))
        fmt = format_score(len(violations), config.format_violation_penalty)
        # Completion is paid for solving: a wrong (or unfinished) answer earns none.
        task_completion = fmt if (request.answered and accuracy.correct) else 0.0
        tools = tool_efficiency(request.tool_calls, accuracy.correct, config)
        weights = config.weight_map
        weighted = combine(
            config.preset,
            Components(accuracy.score, fmt, task_completion, tools.score, len(violations), dict(request.tool_calls)),
            weights=weights,
            search_penalty=config.search_penalty,
            tool_bonus=config.tool_bonus,
            data_source=request.data_source,
        )
        return {
            "score": round(sum(weighted.values()), _PRECISION),
            "accuracy": accuracy.score,
            "format": round(fmt, _PRECISION),
            "tool_efficiency": round(tools.score, _PRECISION),
            "task_completion": round(task_completion, _PRECISION),
            "details": {
                "id": request.id,
                "answer": request.answer,
                "answered": request.answered,
                "stop_reason": request.stop_reason,
                "answer_type": accuracy.answer_type,
                "accuracy_method": accuracy.method,
                "accuracy_reason": accuracy.reason,
                "answer_length": len(request.answer or ""),
                "answer_length_cap": answer_length_cap(request.ground_truths, config),
                "judge_used": accuracy.judge_used,
                "judge_fallback": accuracy.judge_fallback,
                "judge_error": accuracy.judge_error,
                "format_violations": [v.to_dict() for v in violations],
                "turns": len(request.turn_texts),
                "tool_calls": dict(request.tool_calls),
                "tool_stats_source": request.tool_stats_source,
                "tool_credit": tools.credit,
                "tool_penalty": round(tools.penalty, _PRECISION),
                "tool_penalty_breakdown": {k: round(v, _PRECISION) for k, v in tools.penalty_breakdown.items()},
                "preset": config.preset,
                "weights": weights,
                "weighted": {k: round(v, _PRECISION) for k, v in weighted.items()},
                **(accuracy.details() if isinstance(accuracy, BoxAccuracy) else {}),
            },
        }

    def warm_up(self) -> None:
        """Pay one-off costs now (math-verify's sympy/ANTLR import and grammar build, ~1 s)
        so that a server's first requests do not queue behind them."""
        self.score(request_from_response(answer_action("\\frac{1}{2}"), "0.5"))

    def score_batch(self, requests: list[ScoreRequest]) -> list[dict[str, Any]]:
        """Score many requests; judge calls (network-bound) run in parallel, in input order."""
        if self.judge is None or len(requests) < 2:
            return [self.score(r) for r in requests]
        workers = min(len(requests), self.config.judge.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward-judge") as pool:
            return list(pool.map(self.score, requests))


def score_trajectory(
    trajectory: dict[str, Any] | Trajectory,
    ground_truth: Any = None,
    config: RewardConfig | None = None,
    *,
    answer_type: str | None = None,
    choices: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Score a trajectory (dict in the shared schema, or a ``Trajectory``).

    ``ground_truth`` defaults to the trajectory's own; it may be a list of accepted answers.
    """
    request = request_from_trajectory(trajectory, ground_truth, answer_type=answer_type, choices=choices)
    return RewardScorer(config).score(request)


def score_response(
    response: str,
    ground_truth: Any,
    tool_stats: dict[str, int] | None = None,
    config: RewardConfig | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Score a full response text; ``fields``: question, answer_type, choices, stop_reason."""
    return RewardScorer(config).score(request_from_response(response, ground_truth, tool_stats=tool_stats, **fields))


@functools.lru_cache(maxsize=8)
def _scorer_from_file(path: str | None) -> RewardScorer:
    return RewardScorer(load_reward_config(path))


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward function (``custom_reward_function.name: compute_score``).

    Returns only numbers (``score`` plus the components and a judge-fallback flag) because
    verl averages every returned key into its metrics. Scoring inputs beyond the text come
    from ``extra_info``: ``trajectory`` (the record our agent loop built: when present it is
    scored and the text is not read), else ``tool_stats``, ``question``, ``answer_type``,
    ``choices``, ``stop_reason`` beside the text. The config file is ``config_path`` (a ``reward_kwargs`` entry) or
    ``$DEEPEYES_REWARD_CONFIG``; defaults otherwise. ``data_source`` routes the
    ``deepeyes_v2`` preset as the released recipe does (see :mod:`deepeyes.rewards.presets`).
    """
    scorer = _scorer_from_file(kwargs.get("config_path") or os.environ.get(CONFIG_ENV) or None)
    info = extra_info or {}
    if info.get(TRAJECTORY_KEY) is not None:
        request = request_from_trajectory(
            info[TRAJECTORY_KEY], ground_truth, answer_type=info.get("answer_type"), choices=info.get("choices"), data_source=data_source
        )
    else:
        request = request_from_response(
            solution_str,
            ground_truth,
            tool_stats=info.get("tool_stats"),
            question=info.get("question"),
            answer_type=info.get("answer_type"),
            choices=info.get("choices"),
            stop_reason=info.get("stop_reason"),
            data_source=data_source,
            image_frame=info.get("image_frame"),
        )
    result = scorer.score(request)
    return {
        "score": result["score"],
        "accuracy": result["accuracy"],
        "format": result["format"],
        "tool_efficiency": result["tool_efficiency"],
        "task_completion": result["task_completion"],
        "judge_fallback": float(result["details"]["judge_fallback"]),
    }
