"""Prometheus metrics behind the reward server's ``GET /metrics`` (text exposition format).

Each app has its own ``prometheus_client`` registry, so several servers in one process (tests)
do not share counters. Counts are per process: under gunicorn each worker keeps its own and
says which it is (``deepeyes_reward_process_info{pid=…}``), so sum over workers or run one
worker for exact totals. :func:`read_exposition` turns a scrape back into numbers, for the
client and the tests.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

#: Upper edges of the score histogram buckets; scores lie in [-0.3, 1] with default weights
#: (the first bucket, ``le="0.0"``, holds every score at or below 0).
SCORE_BUCKETS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
#: Upper edges of the request latency buckets, in seconds.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: ``Content-Type`` of :meth:`ServiceMetrics.exposition`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """Request, latency, judge and score statistics of one reward-server process (thread-safe)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("deepeyes_reward_requests", "HTTP requests answered, by route and status", ["endpoint", "status"], registry=r)
        self.latency = Histogram("deepeyes_reward_request_latency_seconds", "time to answer a request", buckets=LATENCY_BUCKETS, registry=r)
        self.judge_calls = Counter("deepeyes_reward_judge_calls", "scores that asked the LLM judge", registry=r)
        self.judge_fallbacks = Counter("deepeyes_reward_judge_fallbacks", "judge calls that failed, so the rules' verdict stood", registry=r)
        self.scores = Histogram("deepeyes_reward_score", "scores returned", buckets=SCORE_BUCKETS, registry=r)
        Info("deepeyes_reward_process", "the process these counts belong to", registry=r).info({"pid": str(os.getpid())})

    def record_request(self, endpoint: str, status: int, latency_s: float) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.observe(latency_s)

    def record_results(self, results: list[dict[str, Any]]) -> None:
        for result in results:
            self.scores.observe(result["score"])
            self.judge_calls.inc(bool(result["details"]["judge_used"]))
            self.judge_fallbacks.inc(bool(result["details"]["judge_fallback"]))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)


def read_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """A scrape as ``{sample name: {sorted label pairs: value}}``.

    ``deepeyes_reward_requests_total`` → ``{(("endpoint", "/score"), ("status", "200")): 3.0, …}``;
    a sample without labels has the key ``()``.
    """
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    """The sum of sample ``name`` over the label sets that include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(value for key, value in samples.get(name, {}).items() if wanted <= set(key))
