"""verl's custom reward function, scoring through the DeepEyes reward server.

verl loads this file with ``reward.custom_reward_function.path`` / ``name: compute_score``
and calls it once per trajectory with the decoded response. The server does the scoring
(so every stage scores alike); this adapter only forwards the fields the server reads —
the trajectory our agent loop put in ``extra_fields`` (which verl merges into
``extra_info``), or for text-only rollouts the tool statistics and stop reason — in plain
JSON types (verl hands over numpy values). With a trajectory the server scores it exactly
as evaluation and the local engine do; without one it reads the text with the same parser.
The server URL comes from ``reward_kwargs.server_url`` or ``$DEEPEYES_REWARD_SERVER_URL``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from deepeyes.rewards.client import RewardClient

SERVER_URL_ENV = "DEEPEYES_REWARD_SERVER_URL"
#: ``extra_info`` keys the reward server scores with; the rest is the dataset's own.
#: ``trajectory`` is the record our agent loop built; when present the server scores it
#: (the trajectory route) and the text only travels for the log.
FORWARDED_KEYS: tuple[str, ...] = ("trajectory", "tool_stats", "question", "answer_type", "choices", "stop_reason")
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
    """Score one response on the reward server; returns ``score`` and its components (numbers only)."""
    url = server_url or os.environ.get(SERVER_URL_ENV)
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
