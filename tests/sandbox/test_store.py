"""SessionStore against a real redis-server: the one command of an open, and the epoch that
tells a delta write whether Redis still holds the snapshot the delta builds on."""

from __future__ import annotations

import redis

from deepeyes.sandbox.store import EPOCH_LOST, MOVED, SAVED, SessionStore

TTL_S = 60.0
PENDING_TTL_S = 5.0


def _store(client: redis.Redis) -> SessionStore:
    return SessionStore(client, TTL_S, prefix="test", pending_images_ttl_s=PENDING_TTL_S)


def test_a_fresh_start_forgets_earlier_state_keeps_the_images_and_claims_the_session(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    store.claim("s", "instance-a")
    epoch = store.ensure_epoch()
    assert store.save_delta("s", "instance-a", {"x": b"blob"}, [], {"g": "generator"}, refresh=True, epoch=epoch) == SAVED
    store.start_fresh("s", "instance-b", [b"\x89PNG one", b"\x89PNG two"])
    stored = store.load("s")
    assert stored is not None and stored.blobs == {} and stored.unpicklable == {}
    assert stored.images == [b"\x89PNG one", b"\x89PNG two"]
    assert store.owner("s") == "instance-b"
    assert 0 < redis_client.pttl("test:s:owner") <= TTL_S * 1000
    # An open's images wait for the first call for the idle timeout, not the snapshot's lifetime.
    assert 0 < redis_client.pttl("test:s:images") <= PENDING_TTL_S * 1000


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


def test_a_delta_is_refused_once_redis_lost_the_snapshot_it_builds_on(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    epoch = store.ensure_epoch()
    assert store.ensure_epoch() == epoch  # stable while Redis keeps its data
    assert store.save_delta("s", "a", {"x": b"1", "arr": b"2"}, [], {}, refresh=True, epoch=epoch) == SAVED
    redis_client.flushall()  # what a restart without persistence looks like
    assert store.save_delta("s", "a", {"x": b"3"}, [], {}, refresh=False, epoch=epoch) == EPOCH_LOST
    assert store.load("s") is None  # nothing partial was written
    new_epoch = store.ensure_epoch()
    assert new_epoch != epoch
    assert store.save_delta("s", "a", {"x": b"3", "arr": b"2"}, [], {}, refresh=True, epoch=new_epoch, full=True) == SAVED
    assert store.load("s").blobs == {"x": b"3", "arr": b"2"}


def test_a_full_save_replaces_the_stored_namespace_and_respects_the_owner(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    epoch = store.ensure_epoch()
    store.save_delta("s", "a", {"old": b"1", "kept": b"2"}, [], {}, refresh=True, epoch=epoch)
    assert store.save_delta("s", "a", {"kept": b"3"}, [], {}, refresh=True, epoch=epoch, full=True) == SAVED
    assert store.load("s").blobs == {"kept": b"3"}
    store.claim("s", "b")
    assert store.save_delta("s", "a", {"kept": b"4"}, [], {}, refresh=True, epoch=epoch, full=True) == MOVED


def test_pending_images_are_put_back_only_where_no_snapshot_exists(redis_client: redis.Redis) -> None:
    store = _store(redis_client)
    epoch = store.ensure_epoch()
    assert store.put_pending_images("opened", "a", [b"img"])
    assert store.load("opened").images == [b"img"] and store.owner("opened") == "a"
    store.save_delta("called", "a", {"x": b"1"}, [], {}, refresh=True, epoch=epoch)
    assert not store.put_pending_images("called", "a", [b"img"])
    assert store.load("called").images == []
