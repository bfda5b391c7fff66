"""The text-search tool: validate the query, consult the cache, call the backend with retries.

Whatever goes wrong (bad query, backend down, malformed response, cache store down) ends
up in :attr:`TextSearchOutcome.error` and is rendered as an error observation, because an
exception escaping here would end an RL rollout instead of letting the model recover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from deepeyes import wire
from deepeyes.search.backends.base import BackendError, TextBackend
from deepeyes.search.cache import (
    CacheStats,
    RedisResultCache,
    ResultCache,
    SqliteResultCache,
    cache_key,
)
from deepeyes.search.config import CacheConfig, RetryConfig, SearchConfig, resolve_path
from deepeyes.search.query import QueryError, clean_query

logger = logging.getLogger(__name__)


@dataclass
class TextSearchOutcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cached: bool = False
    #: What failed, for the observation's ``Error (kind)`` prefix: ``invalid query`` or ``search``.
    error_kind: str = "search"

    def render(self) -> str:
        """The user turn for the model (DESIGN §4): results, "No results found." or the error."""
        if self.error is not None:
            return wire.error_response(self.error_kind, self.error)
        return wire.tool_response(wire.text_search_body(self.results))


def build_backend(cfg: SearchConfig) -> TextBackend:
    """The backend ``cfg.text.backend`` names (imports only what that backend needs)."""
    backend = cfg.text.backend
    if backend == "local":
        from deepeyes.search.backends.local import LocalBM25Backend

        return LocalBM25Backend.from_config(cfg.text.local)
    if backend == "http":
        from deepeyes.search.backends.http import HttpSearchBackend

        return HttpSearchBackend.from_config(cfg.text.http)
    from deepeyes.search.backends.private import PrivateSearchBackend

    return PrivateSearchBackend.from_config(cfg.text.private)


def build_cache(cfg: CacheConfig, redis_client: redis.Redis | None) -> ResultCache | None:
    """Redis when a client or URL is available (or required), otherwise the SQLite file."""
    if not cfg.enabled:
        return None
    if cfg.backend != "sqlite":
        if redis_client is None and cfg.redis_url:
            redis_client = redis.Redis.from_url(cfg.redis_url)
        if redis_client is not None:
            return RedisResultCache(redis_client, cfg.ttl_s, cfg.key_prefix)
        if cfg.backend == "redis":
            raise ValueError("search.cache.backend is 'redis' but neither a Redis client nor search.cache.redis_url was given")
    return SqliteResultCache(resolve_path(cfg.sqlite_path), cfg.ttl_s)


class TextSearcher:
    """One backend behind query validation, the result cache and retries (see the module docstring)."""

    def __init__(
        self,
        backend: TextBackend,
        cache: ResultCache | None,
        top_k: int = 5,
        max_query_chars: int = 512,
        retry: RetryConfig | None = None,
        bypass_cache: bool = False,
        cache_outage_pause_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.backend = backend
        self.cache = cache
        self.top_k = top_k
        self.max_query_chars = max_query_chars
        self.retry = retry or RetryConfig()
        self.bypass_cache = bypass_cache
        self.cache_outage_pause_s = cache_outage_pause_s
        self.stats = CacheStats()
        self._sleep = sleep
        self._cache_paused_until = 0.0

    @classmethod
    def from_config(cls, cfg: SearchConfig, redis_client: redis.Redis | None = None) -> TextSearcher:
        return cls(
            backend=build_backend(cfg),
            cache=build_cache(cfg.cache, redis_client),
            top_k=cfg.text.top_k,
            max_query_chars=cfg.text.max_query_chars,
            retry=cfg.text.retry,
            bypass_cache=cfg.cache.bypass,
            cache_outage_pause_s=cfg.cache.outage_pause_s,
        )

    def search(self, query: str, top_k: int | None = None, bypass_cache: bool | None = None) -> TextSearchOutcome:
        """Top-``top_k`` results for ``query``; never raises for bad queries or backend failures."""
        k = self.top_k if top_k is None else top_k
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            return TextSearchOutcome(error=f"top_k must be a positive integer, got {k!r}", error_kind="invalid query")
        try:
            cleaned = clean_query(query, self.max_query_chars)
        except QueryError as exc:
            return TextSearchOutcome(error=str(exc), error_kind="invalid query")
        key = cache_key(self.backend.identity, cleaned, k)
        bypass = self.bypass_cache if bypass_cache is None else bypass_cache
        if self._cache_usable() and not bypass:
            cached = self._cache_get(key)
            if cached is not None:
                self.stats.hits += 1
                return TextSearchOutcome(results=cached, cached=True)
            self.stats.misses += 1
        try:
            results = self._search_with_retries(cleaned, k)
        except BackendError as exc:
            logger.warning("text search failed for %r: %s", cleaned, exc)
            return TextSearchOutcome(error=str(exc))
        except Exception as exc:  # a backend bug must still end as an observation, not a crashed rollout
            logger.exception("text search backend %s crashed on %r", self.backend.identity, cleaned)
            return TextSearchOutcome(error=f"the search backend failed unexpectedly ({type(exc).__name__}: {exc})")
        if self._cache_usable():
            self._cache_put(key, results)
        return TextSearchOutcome(results=results)

    def _search_with_retries(self, query: str, k: int) -> list[dict[str, Any]]:
        attempts = max(1, self.retry.max_attempts)
        attempt = 1
        while True:
            try:
                return self.backend.search(query, k)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                if attempt >= attempts:
                    raise BackendError(f"{exc} (gave up after {attempts} attempts)") from exc
                wait = self.retry.backoff_s * 2 ** (attempt - 1)
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                wait = min(wait, self.retry.max_backoff_s)
                logger.info("text search attempt %d/%d failed (%s); retrying in %.2f s", attempt, attempts, exc, wait)
                self._sleep(wait)
                attempt += 1

    def _cache_usable(self) -> bool:
        return self.cache is not None and time.monotonic() >= self._cache_paused_until

    def _cache_get(self, key: str) -> list[dict[str, Any]] | None:
        try:
            return self.cache.get(key)  # type: ignore[union-attr]
        except Exception as exc:  # a cache outage must not take search down with it
            self._cache_failed("read", exc)
            return None

    def _cache_put(self, key: str, results: list[dict[str, Any]]) -> None:
        try:
            self.cache.put(key, results)  # type: ignore[union-attr]
            self.stats.writes += 1
        except Exception as exc:
            self._cache_failed("write", exc)

    def _cache_failed(self, operation: str, exc: Exception) -> None:
        self.stats.errors += 1
        self._cache_paused_until = time.monotonic() + self.cache_outage_pause_s
        logger.warning("search cache %s failed (%s); searching without the cache for %.0f s", operation, exc, self.cache_outage_pause_s)
