"""verl's custom reward function, scoring through the DeepEyes reward server.

verl loads this file with ``reward.custom_reward_function.path`` / ``name: compute_score``
and calls it once per trajectory with the decoded response. When our agent loop ran the
rollout, ``extra_info["trajectory"]`` (its ``extra_fields``, merged by verl) holds the
trajectory it built, and that is what gets scored: on the reward server's trajectory
route, or in-process with :func:`deepeyes.rewards.scoring.score_trajectory` when no
server is configured. Otherwise the text route: the server scores the decoded response
with the fields forwarded from ``extra_info``, in plain JSON types (verl hands over numpy
values). The server URL comes from ``reward_kwargs.server_url`` or ``$DEEPEYES_REWARD_SERVER_URL``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from deepeyes.rewards.client import RewardClient
from deepeyes.rewards.payload import TRAJECTORY_KEY
from deepeyes.rewards.scoring import score_trajectory

SERVER_URL_ENV = "DEEPEYES_REWARD_SERVER_URL"
#: ``extra_info`` keys the reward server scores with; the rest is the dataset's own.
FORWARDED_KEYS: tuple[str, ...] = ("tool_stats", "question", "answer_type", "choices", "stop_reason")
RETURNED_KEYS: tuple[str, ...] = ("score", "accuracy", "format", "tool_efficiency", "task_completion")


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and nested containers → JSON-ready Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@functools.lru_cache(maxsize=4)
def _client(url: str) -> RewardClient:
    return RewardClient(url)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    server_url: str | None = None,
    **_: Any,
) -> dict[str, float]:
    """Score one rollout; returns ``score`` and its components (numbers only).

    Raises ``RuntimeError`` for a text-only rollout when no reward server is configured.
    """
    url = server_url or os.environ.get(SERVER_URL_ENV)
    trajectory = (extra_info or {}).get(TRAJECTORY_KEY)
    if trajectory is not None:
        truth = _plain(ground_truth)
        result = _client(url.rstrip("/")).score(trajectory=trajectory, ground_truth=truth) if url else score_trajectory(trajectory, truth)
        return {key: float(result[key]) for key in RETURNED_KEYS}
    if not url:
        raise RuntimeError(f"no reward server: set reward_kwargs.server_url or ${SERVER_URL_ENV}")
    info = {key: _plain(value) for key, value in (extra_info or {}).items() if key in FORWARDED_KEYS and value is not None}
    result = _client(url.rstrip("/")).score(
        solution_str=solution_str,
        ground_truth=_plain(ground_truth),
        data_source=str(data_source),
        extra_info=info,
    )
    return {key: float(result[key]) for key in RETURNED_KEYS}
