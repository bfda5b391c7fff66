"""The reward server's Flask app factory, ``create_app``: what ``deepeyes.rewards.server`` and gunicorn serve.

    gunicorn -w 4 -b 127.0.0.1:5000 "deepeyes.rewards.service:create_app(config_path='reward.yaml')"

Endpoints: ``POST /score`` (one request), ``POST /score_batch`` (``{"items": [...]}``,
judge calls in parallel), ``GET /health``, ``GET /metrics`` (Prometheus text format). Bad payloads get HTTP 400
with ``{"error": ...}`` (a body nested past the recursion limit included); every request
is logged on one line. With ``$DEEPEYES_REWARD_TOKEN`` set, every request but ``/health``
needs ``Authorization: Bearer <token>`` (HTTP 401 otherwise; :mod:`deepeyes.utils.auth`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from deepeyes.config import to_dict
from deepeyes.rewards.config import RewardConfig, load_reward_config
from deepeyes.rewards.metrics import CONTENT_TYPE, ServiceMetrics
from deepeyes.rewards.payload import PayloadError, parse_request
from deepeyes.rewards.scoring import RewardScorer
from deepeyes.utils.auth import OPEN_PATHS, authorized

logger = logging.getLogger("deepeyes.rewards.server")

#: Largest ``/score_batch``; bigger batches should be split by the caller.
MAX_BATCH_ITEMS = 4096
#: Largest request body; a batch of long multi-turn responses stays well below it.
MAX_BODY_BYTES = 256 * 1024 * 1024
#: The environment variable holding the bearer token (server and :class:`~deepeyes.rewards.client.RewardClient`).
TOKEN_ENV = "DEEPEYES_REWARD_TOKEN"


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def create_app(
    config: RewardConfig | None = None,
    *,
    config_path: str | Path | None = None,
    section: str | None = None,
    log_level: str | None = None,
    token: str | None = None,
) -> Flask:
    """A reward server app scoring with ``config``, or with the RewardConfig YAML at ``config_path``.

    ``section`` selects one top-level key of that file; neither given: the defaults.
    ``log_level`` (e.g. ``"INFO"``) installs a root log handler, for servers such as gunicorn
    that import the factory in a fresh worker process. ``token``: the bearer token requests
    must carry (default: ``$DEEPEYES_REWARD_TOKEN``; neither: no authentication). Raises
    ``deepeyes.config.ConfigError`` for a bad config file.
    """
    token = token or os.environ.get(TOKEN_ENV) or None
    if log_level is not None:
        logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    if config is None and config_path is not None:
        config = load_reward_config(config_path, section)
    scorer = RewardScorer(config)
    scorer.warm_up()
    metrics = ServiceMetrics()
    app = Flask("deepeyes_reward_server")
    app.config["SCORER"] = scorer
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["METRICS"] = metrics

    @app.before_request
    def _start_clock() -> Any:
        g.start = time.perf_counter()
        g.items = 0
        if request.path not in OPEN_PATHS and not authorized(request.headers.get("Authorization"), token):
            return _error(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        return None

    @app.after_request
    def _log_request(response: Response) -> Response:
        latency_s = time.perf_counter() - g.get("start", time.perf_counter())
        # Count by route, not raw path, so that probes of random URLs cannot grow the table.
        endpoint = request.url_rule.rule if request.url_rule else "<unmatched>"
        metrics.record_request(endpoint, response.status_code, latency_s)
        logger.info(
            "%s %s %d %.1fms items=%d", request.method, request.path, response.status_code, 1000 * latency_s, g.get("items", 0)
        )
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _internal_error(exc: Exception) -> tuple[Response, int]:
        logger.exception("scoring failed")
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    def _json_body() -> Any:
        try:
            body = request.get_json(silent=True)
        except RecursionError as exc:  # silent covers malformed JSON, not JSON nested past the recursion limit
            raise PayloadError("the request body is nested too deeply to read") from exc
        if body is None:
            raise PayloadError("the request body must be JSON (Content-Type: application/json)")
        return body

    @app.post("/score")
    def score() -> Any:
        try:
            score_request = parse_request(_json_body())
        except PayloadError as exc:
            return _error(400, str(exc))
        g.items = 1
        try:
            result = scorer.score(score_request)
        except PayloadError as exc:  # a ground truth only its preset can read (a grounding row's box)
            return _error(400, str(exc))
        metrics.record_results([result])
        return jsonify(result)

    @app.post("/score_batch")
    def score_batch() -> Any:
        try:
            body = _json_body()
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list) or not items:
                raise PayloadError("the request body must be {\"items\": [<score request>, ...]} with at least one item")
            if len(items) > MAX_BATCH_ITEMS:
                raise PayloadError(f"at most {MAX_BATCH_ITEMS} items per batch, got {len(items)}")
            requests = []
            for index, item in enumerate(items):
                try:
                    requests.append(parse_request(item))
                except PayloadError as exc:
                    raise PayloadError(f"items[{index}]: {exc}") from exc
        except PayloadError as exc:
            return _error(400, str(exc))
        g.items = len(requests)
        try:
            results = scorer.score_batch(requests)
        except PayloadError as exc:  # as on /score: the batch is refused whole, as for a malformed item
            return _error(400, str(exc))
        metrics.record_results(results)
        return jsonify({"results": results})

    @app.get("/health")
    def health() -> Any:
        return jsonify(
            {
                "status": "ok",
                "weights": scorer.config.weight_map,
                "judge_enabled": scorer.judge is not None,
                "config": to_dict(scorer.config),
            }
        )

    @app.get("/metrics")
    def get_metrics() -> Any:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE)

    return app
