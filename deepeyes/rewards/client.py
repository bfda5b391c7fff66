"""HTTP client for the reward server, for callers that score remotely (RL workers on other nodes).

With ``$DEEPEYES_REWARD_TOKEN`` set (or ``token=``), every request carries it as a bearer token.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from deepeyes.rewards.metrics import read_exposition
from deepeyes.trajectory import Trajectory


class RewardServerError(RuntimeError):
    """The reward server refused a request (HTTP 4xx/5xx); the message is the server's."""

    def __init__(self, status: int, message: str):
        super().__init__(f"reward server answered HTTP {status}: {message}")
        self.status = status


class RewardClient:
    """``RewardClient("http://127.0.0.1:5000").score(response=..., ground_truth=...)``."""

    def __init__(self, url: str, timeout_s: float = 60.0, token: str | None = None):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        token = token or os.environ.get("DEEPEYES_REWARD_TOKEN") or None
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._session.request(method, self.url + path, json=body, timeout=self.timeout_s)
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:500]}
        if response.status_code != 200:
            raise RewardServerError(response.status_code, str(data.get("error", data)))
        return data

    def score(self, payload: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """Score one request: a ready payload, or its fields as keyword arguments.

        Fields: ``trajectory`` (dict or ``Trajectory``) or ``response``, plus
        ``ground_truth``, ``tool_stats``, ``question``, ``answer_type``, ``choices``, ``stop_reason``.
        """
        return self._call("POST", "/score", _plain({**(payload or {}), **fields}))

    def score_batch(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Score many payloads in one request; results come back in input order."""
        return self._call("POST", "/score_batch", {"items": [_plain(item) for item in items]})["results"]

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def metrics(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """The server's Prometheus metrics, read by :func:`deepeyes.rewards.metrics.read_exposition`
        (sum them with :func:`deepeyes.rewards.metrics.total`)."""
        response = self._session.get(self.url + "/metrics", timeout=self.timeout_s)
        if response.status_code != 200:
            raise RewardServerError(response.status_code, response.text[:500])
        return read_exposition(response.text)

    def close(self) -> None:
        self._session.close()


def _plain(payload: dict[str, Any]) -> dict[str, Any]:
    trajectory = payload.get("trajectory")
    if isinstance(trajectory, Trajectory):
        return {**payload, "trajectory": trajectory.to_dict()}
    return payload
