"""Counters behind the reward server's ``/metrics`` (per process: one per gunicorn worker)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

#: Upper edges of the score histogram buckets; scores lie in [-0.3, 1] with default weights.
SCORE_BUCKETS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class ServiceMetrics:
    """Thread-safe request, latency, judge and score statistics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._latency_total_s = 0.0
        self._latency_max_s = 0.0
        self._judge_calls = 0
        self._judge_fallbacks = 0
        self._score_count = 0
        self._score_total = 0.0
        self._score_min: float | None = None
        self._score_max: float | None = None
        self._buckets: Counter[str] = Counter()

    def record_request(self, endpoint: str, status: int, latency_s: float) -> None:
        with self._lock:
            self._requests[endpoint] += 1
            self._statuses[status] += 1
            self._latency_total_s += latency_s
            self._latency_max_s = max(self._latency_max_s, latency_s)

    def record_results(self, results: list[dict[str, Any]]) -> None:
        with self._lock:
            for result in results:
                score = result["score"]
                self._score_count += 1
                self._score_total += score
                self._score_min = score if self._score_min is None else min(self._score_min, score)
                self._score_max = score if self._score_max is None else max(self._score_max, score)
                self._buckets[_bucket(score)] += 1
                self._judge_calls += result["details"]["judge_used"]
                self._judge_fallbacks += result["details"]["judge_fallback"]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            count = sum(self._requests.values())
            return {
                "pid": os.getpid(),
                "requests": dict(self._requests),
                "requests_total": count,
                "responses_by_status": {str(k): v for k, v in sorted(self._statuses.items())},
                "errors": sum(v for k, v in self._statuses.items() if k >= 400),
                "latency_ms": {
                    "mean": 1000 * self._latency_total_s / count if count else 0.0,
                    "max": 1000 * self._latency_max_s,
                },
                "judge": {"calls": self._judge_calls, "fallbacks": self._judge_fallbacks},
                "scores": {
                    "count": self._score_count,
                    "mean": self._score_total / self._score_count if self._score_count else None,
                    "min": self._score_min,
                    "max": self._score_max,
                    "histogram": {label: self._buckets.get(label, 0) for label in _bucket_labels()},
                },
            }


def _bucket_labels() -> list[str]:
    labels = [f"<={SCORE_BUCKETS[0]:g}"]
    labels += [f"({low:g},{high:g}]" for low, high in zip(SCORE_BUCKETS, SCORE_BUCKETS[1:], strict=False)]
    return labels


def _bucket(score: float) -> str:
    if score <= SCORE_BUCKETS[0]:
        return f"<={SCORE_BUCKETS[0]:g}"
    for low, high in zip(SCORE_BUCKETS, SCORE_BUCKETS[1:], strict=False):
        if score <= high:
            return f"({low:g},{high:g}]"
    return f"({SCORE_BUCKETS[-2]:g},{SCORE_BUCKETS[-1]:g}]"
