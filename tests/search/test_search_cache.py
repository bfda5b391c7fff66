"""The text-search result cache: keys, TTL expiry, bypass, counters, Redis and SQLite stores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from deepeyes.search.cache import RedisResultCache, SqliteResultCache, cache_key
from deepeyes.search.config import SearchConfig
from deepeyes.search.text import TextSearcher, build_cache
from deepeyes.utils.processes import free_port


class CountingBackend:
    """A backend that records its calls, so tests can tell cache hits from backend calls."""

    identity = "counting"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
        self.calls.append((query, top_k))
        return [{"title": f"{query} #{i}", "link": f"https://kb.example/{i}", "snippet": "s", "date": None} for i in range(top_k)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_key_normalises_query_and_separates_backend_and_k() -> None:
    assert cache_key("b", "Eiffel  Tower HEIGHT", 5) == cache_key("b", " eiffel tower height ", 5)
    assert cache_key("b", "eiffel tower", 5) != cache_key("b", "eiffel tower", 3)
    assert cache_key("b", "eiffel tower", 5) != cache_key("other", "eiffel tower", 5)


def test_sqlite_cache_hits_then_expires_after_ttl(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = CountingBackend()
    searcher = TextSearcher(backend, SqliteResultCache(tmp_path / "c.sqlite", ttl_s=60, clock=clock))
    first = searcher.search("Aster river towns")
    second = searcher.search("aster  RIVER towns")
    assert (first.cached, second.cached) == (False, True)
    assert second.results == first.results
    assert len(backend.calls) == 1
    clock.now += 61
    third = searcher.search("Aster river towns")
    assert third.cached is False and len(backend.calls) == 2
    assert (searcher.stats.hits, searcher.stats.misses, searcher.stats.writes) == (1, 2, 2)


def test_sqlite_cache_is_shared_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    TextSearcher(CountingBackend(), SqliteResultCache(path, ttl_s=60)).search("tea gardens")
    other_backend = CountingBackend()
    outcome = TextSearcher(other_backend, SqliteResultCache(path, ttl_s=60)).search("tea gardens")
    assert outcome.cached and other_backend.calls == []


def test_bypass_skips_reads_but_refreshes_the_entry(tmp_path: Path) -> None:
    backend = CountingBackend()
    searcher = TextSearcher(backend, SqliteResultCache(tmp_path / "c.sqlite", ttl_s=60))
    searcher.search("clockmaking")
    bypassed = searcher.search("clockmaking", bypass_cache=True)
    assert bypassed.cached is False and len(backend.calls) == 2
    assert searcher.search("clockmaking").cached is True

    configured = TextSearcher(backend, SqliteResultCache(tmp_path / "c.sqlite", ttl_s=60), bypass_cache=True)
    assert configured.search("clockmaking").cached is False
    assert len(backend.calls) == 3


def test_redis_cache_expires_by_ttl(redis_client: redis.Redis) -> None:
    backend = CountingBackend()
    searcher = TextSearcher(backend, RedisResultCache(redis_client, ttl_s=0.3, key_prefix="t:"))
    searcher.search("saltpans")
    assert searcher.search("saltpans").cached is True
    keys = redis_client.keys("t:*")
    assert len(keys) == 1 and 0 < redis_client.pttl(keys[0]) <= 300
    time.sleep(0.45)
    assert searcher.search("saltpans").cached is False
    assert len(backend.calls) == 2


def test_from_config_prefers_redis_client_and_falls_back_to_sqlite(redis_client: redis.Redis, tmp_path: Path) -> None:
    cfg = SearchConfig()
    cfg.cache.sqlite_path = str(tmp_path / "fallback.sqlite")
    assert isinstance(build_cache(cfg.cache, redis_client), RedisResultCache)
    assert isinstance(build_cache(cfg.cache, None), SqliteResultCache)
    cfg.cache.backend = "sqlite"
    assert isinstance(build_cache(cfg.cache, redis_client), SqliteResultCache)
    cfg.cache.enabled = False
    assert build_cache(cfg.cache, redis_client) is None


def test_unreachable_redis_degrades_to_uncached_search() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    backend = CountingBackend()
    searcher = TextSearcher(backend, RedisResultCache(dead, ttl_s=60, key_prefix="t:"), cache_outage_pause_s=60)
    outcome = searcher.search("boatbuilding")
    assert outcome.error is None and len(outcome.results) == 5 and not outcome.cached
    assert searcher.stats.errors == 1, "the failed read pauses the cache, so no write is attempted"
    assert searcher.search("boatbuilding").error is None
    assert searcher.stats.errors == 1 and len(backend.calls) == 2, "while paused the cache is not touched"


def test_cache_resumes_after_the_outage_pause(tmp_path: Path) -> None:
    class FailingOnce(SqliteResultCache):
        failures = 1

        def get(self, key: str) -> list[dict[str, Any]] | None:
            if self.failures:
                self.failures -= 1
                raise OSError("disk unavailable")
            return super().get(key)

    searcher = TextSearcher(CountingBackend(), FailingOnce(tmp_path / "c.sqlite", ttl_s=60), cache_outage_pause_s=0.0)
    assert searcher.search("weaving").cached is False  # the read failed; the pause is over by the write
    assert searcher.search("weaving").cached is True
    assert searcher.stats.errors == 1


def test_local_search_cached_in_redis_end_to_end(redis_client: redis.Redis, tmp_path: Path) -> None:
    from search_fixtures import town_documents, write_corpus

    cfg = SearchConfig()
    cfg.text.local.corpus_path = str(write_corpus(tmp_path / "corpus.jsonl", town_documents(10)))
    searcher = TextSearcher.from_config(cfg, redis_client=redis_client)
    first = searcher.search("Quillmere 004 weaving")
    second = searcher.search("quillmere 004   WEAVING")
    assert not first.cached and second.cached and second.results == first.results
    (key,) = redis_client.keys(cfg.cache.key_prefix + "*")  # the redis-server is shared: other tests' keys may be there
    assert 86_000_000 < redis_client.pttl(key) <= 86_400_000


def test_unexpected_backend_exception_becomes_an_error_observation(tmp_path: Path) -> None:
    class Buggy(CountingBackend):
        def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
            raise KeyError("title")

    outcome = TextSearcher(Buggy(), SqliteResultCache(tmp_path / "c.sqlite", ttl_s=60)).search("weaving")
    assert outcome.error == "the search backend failed unexpectedly (KeyError: 'title')"
    assert outcome.render().startswith("<tool_response>\nError (search): ")
    assert TextSearcher(CountingBackend(), SqliteResultCache(tmp_path / "c.sqlite", ttl_s=60)).search("weaving").cached is False, (
        "errors are not cached"
    )
