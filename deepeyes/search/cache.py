"""Text-search result cache (Redis or a SQLite file) with a TTL and hit/miss counters.

Web-search APIs are slow, rate-limited and paid per call, and RL rollouts ask the same
questions many times, so results are kept for a day by default. Redis is shared by every
worker of a deployment; the SQLite file is the zero-setup choice for one machine.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from deepeyes.search.query import normalise_for_cache


def cache_key(backend_identity: str, query: str, top_k: int) -> str:
    """Key of one search: backend + normalised query + k (hashed to a fixed length)."""
    material = json.dumps([backend_identity, normalise_for_cache(query), top_k], ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    #: Cache-store failures (the search still runs; the cache is skipped for that call).
    errors: int = 0


class ResultCache(Protocol):
    name: str

    def get(self, key: str) -> list[dict[str, Any]] | None: ...

    def put(self, key: str, results: list[dict[str, Any]]) -> None: ...


class RedisResultCache:
    """Entries are Redis strings with a millisecond expiry, so Redis itself enforces the TTL."""

    name = "redis"

    def __init__(self, client: redis.Redis, ttl_s: float, key_prefix: str):
        self.client = client
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.key_prefix = key_prefix

    def get(self, key: str) -> list[dict[str, Any]] | None:
        raw = self.client.get(self.key_prefix + key)
        return None if raw is None else json.loads(raw)

    def put(self, key: str, results: list[dict[str, Any]]) -> None:
        self.client.set(self.key_prefix + key, json.dumps(results, ensure_ascii=False), px=self.ttl_ms)


class SqliteResultCache:
    """One table ``(key, value, expires_at)``; expired rows are ignored on read and purged on write."""

    name = "sqlite"

    def __init__(self, path: Path, ttl_s: float, clock: Callable[[], float] = time.time):
        self.path = path
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets several worker processes read while one writes.
        self._connection = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS search_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        self._connection.execute("CREATE INDEX IF NOT EXISTS search_cache_expiry ON search_cache (expires_at)")

    def get(self, key: str) -> list[dict[str, Any]] | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT value FROM search_cache WHERE key = ? AND expires_at > ?", (key, self.clock())
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, results: list[dict[str, Any]]) -> None:
        now = self.clock()
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO search_cache (key, value, expires_at) VALUES (?, ?, ?)",
                (key, json.dumps(results, ensure_ascii=False), now + self.ttl_s),
            )
            self._connection.execute("DELETE FROM search_cache WHERE expires_at <= ?", (now,))

    def close(self) -> None:
        with self._lock:
            self._connection.close()
