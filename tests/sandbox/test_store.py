"""SessionStore.start_fresh: the one Redis command of a session open, against a real redis-server."""

from __future__ import annotations

import redis

from deepeyes.sandbox.store import SessionStore

TTL_S = 60.0


def _store(client: redis.Redis) -> SessionStore:
    return SessionStore(client, TTL_S, prefix="test")


def test_a_fresh_start_forgets_earlier_state_keeps_the_images_and_claims_the_session(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    store.claim("s", "instance-a")
    assert store.save_delta("s", "instance-a", {"x": b"blob"}, [], {"g": "generator"}, refresh=True)
    store.start_fresh("s", "instance-b", [b"\x89PNG one", b"\x89PNG two"])
    stored = store.load("s")
    assert stored is not None and stored.blobs == {} and stored.unpicklable == {}
    assert stored.images == [b"\x89PNG one", b"\x89PNG two"]
    assert store.owner("s") == "instance-b"
    assert 0 < redis_client.pttl("test:s:owner") <= TTL_S * 1000
    assert 0 < redis_client.pttl("test:s:images") <= TTL_S * 1000


def test_a_fresh_start_without_images_leaves_no_state_but_the_claim(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    store.start_fresh("s", "instance-a", [b"old image"])
    store.start_fresh("s", "instance-a")
    assert store.load("s") is None
    assert store.owner("s") == "instance-a"


def test_the_evicted_session_is_released_only_when_this_instance_owns_it(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    store.claim("ours", "instance-a")
    store.claim("moved", "instance-b")  # taken over by another instance meanwhile
    store.start_fresh("new-1", "instance-a", evicted="ours")
    store.start_fresh("new-2", "instance-a", evicted="moved")
    assert store.owner("ours") is None
    assert store.owner("moved") == "instance-b"
    assert store.owner("new-1") == store.owner("new-2") == "instance-a"


def test_a_fresh_start_survives_a_flushed_script_cache(redis_client: redis.Redis) -> None:
    """A restarted Redis has no scripts loaded: the command must reload its script, not fail."""
    store = _store(redis_client)
    store.start_fresh("s", "instance-a")
    redis_client.script_flush()
    store.start_fresh("t", "instance-a", [b"image"], evicted="s")
    assert store.owner("s") is None and store.owner("t") == "instance-a"
    assert store.load("t").images == [b"image"]
