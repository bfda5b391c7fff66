"""Session state in Redis, shared by every sandbox instance.

Per session: a hash of per-name cloudpickle blobs (the user namespace, written as deltas), a
hash of metadata (names that could not be pickled, update time), an owner key naming the
instance that holds the session, and, from an open with images until the first snapshot
after they were loaded, a list of those images' bytes (the kernel is bound at the first call).
The server only moves these bytes; it never unpickles them (only the sandboxed kernel does).

Redis is a copy, not the truth: while a session's kernel lives, the kernel is its state. A
delta is only meaningful on top of the snapshot it was computed against, so every delta
write names the store's *epoch* (``<prefix>:epoch``, a random token set once by the first
instance, with no expiry). A Redis that restarted empty, or was flushed, has no epoch (or
another one): the write is refused (:data:`EPOCH_LOST`) and the instance re-snapshots every
live session in full (see ``sessions.py``), instead of leaving a snapshot rebuilt from later
changes only.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio

#: :meth:`SessionStore.save_delta` results.
SAVED, MOVED, EPOCH_LOST = 1, 0, -1

#: Apply a snapshot delta unless another instance owns the session or the store lost the data
#: the delta builds on (one round trip per call).
#: KEYS: owner, vars, meta, images, epoch. ARGV: instance, ttl_ms, refresh (0/1), unpicklable
#: JSON, time, epoch, full (0/1), number of changed names, then name/blob pairs, then the names
#: to remove. A full snapshot replaces the whole hash (and always rewrites the metadata). A
#: saved snapshot holds the session's images (they are loaded before any snapshot is taken),
#: so the pending image list is dropped.
_SAVE_IF_OWNER = """
if redis.call('GET', KEYS[5]) ~= ARGV[6] then return -1 end
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[4])
local full = ARGV[7] == '1'
if full then redis.call('DEL', KEYS[2]) end
local changed = tonumber(ARGV[8])
local first_removed = 9 + 2 * changed
if changed > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 9, first_removed - 1)) end
if #ARGV >= first_removed then redis.call('HDEL', KEYS[2], unpack(ARGV, first_removed, #ARGV)) end
if full or ARGV[3] == '1' or not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', KEYS[3], 'unpicklable', ARGV[4], 'updated_at', ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
"""

#: Start a session afresh: forget its snapshot and pending images, store the new images and
#: claim it; with a fifth key, first release that (evicted) session unless another instance
#: owns it. A script rather than a MULTI pipeline: one command and one reply, where redis-py's
#: pipeline also asks Redis whether its scripts are loaded (a second round trip) before each
#: execute. The images expire after ``pending_ttl_ms``: a session opened and never called does
#: not keep them for the snapshot's whole lifetime.
#: KEYS: vars, meta, images, owner[, evicted owner]. ARGV: instance, ttl_ms, pending_ttl_ms, images...
_START_FRESH = """
if KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if #ARGV > 3 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 4, #ARGV))
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: Put back the pending images of a session opened here and never called, after the store
#: lost them; only when no snapshot exists (a call elsewhere would have written one).
#: KEYS: vars, meta, images, owner. ARGV: instance, ttl_ms, pending_ttl_ms, images...
_PUT_PENDING = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
local owner = redis.call('GET', KEYS[4])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[3])
if #ARGV > 3 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 4, #ARGV))
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: The store's epoch, set to ARGV[1] when it has none. KEYS: epoch.
_ENSURE_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if epoch then return epoch end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


@dataclass
class StoredSession:
    """A session's snapshot as kept in Redis."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    unpicklable: dict[str, str] = field(default_factory=dict)  # name -> why it was not saved
    images: list[bytes] = field(default_factory=list)  # given at the open, not loaded into a kernel yet


class _Keys:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.epoch = f"{prefix}:epoch"

    def __call__(self, session_id: str, part: str) -> str:
        return f"{self.prefix}:{session_id}:{part}"

    def fresh(self, session_id: str, evicted: str | None) -> list[str]:
        keys = [self(session_id, part) for part in ("vars", "meta", "images", "owner")]
        if evicted is not None:
            keys.append(self(evicted, "owner"))
        return keys


class SessionStore:
    """Redis access for session snapshots and ownership (thread-safe: redis-py pools connections).

    Every method raises ``redis.RedisError`` when Redis cannot be reached or is loading; the
    session manager turns that into HTTP 503 or a retried snapshot, never a lost result.
    ``pending_images_ttl_s`` is how long an open's images wait for the session's first call.
    """

    def __init__(self, client: redis.Redis, state_ttl_s: float, prefix: str = "deepeyes:sandbox",
                 pending_images_ttl_s: float | None = None):
        self.redis = client
        self.ttl_ms = int(state_ttl_s * 1000)
        self.pending_ttl_ms = int((pending_images_ttl_s or state_ttl_s) * 1000)
        self.prefix = prefix
        self._key = _Keys(prefix)
        self._release = client.register_script(_RELEASE_IF_OWNER)
        self._save = client.register_script(_SAVE_IF_OWNER)
        self._start_fresh = client.register_script(_START_FRESH)
        self._put_pending = client.register_script(_PUT_PENDING)
        self._ensure_epoch = client.register_script(_ENSURE_EPOCH)

    # ----------------------------------------------------------------- store identity
    def ensure_epoch(self) -> str:
        """The store's epoch, creating one if the store has none (a fresh or emptied Redis)."""
        value = self._ensure_epoch(keys=[self._key.epoch], args=[secrets.token_hex(8)])
        return value.decode() if isinstance(value, bytes) else str(value)

    def server_run_id(self) -> str:
        """Redis's ``run_id``: it changes whenever the server restarts (even with its data kept)."""
        return str(self.redis.info("server")["run_id"])

    # ----------------------------------------------------------------- sessions
    def owner(self, session_id: str) -> str | None:
        value = self.redis.get(self._key(session_id, "owner"))
        return value.decode() if value is not None else None

    def claim(self, session_id: str, instance: str) -> None:
        self.redis.set(self._key(session_id, "owner"), instance, px=self.ttl_ms)

    def start_fresh(self, session_id: str, instance: str, images: Sequence[bytes] = (),
                    evicted: str | None = None) -> None:
        """Forget the session's earlier state, keep ``images`` (image files' bytes) for its first
        call and claim it for ``instance``; with ``evicted``, also release that session as
        :meth:`release` does. One command (``_START_FRESH``), so one round trip."""
        self._start_fresh(keys=self._key.fresh(session_id, evicted),
                          args=[instance, self.ttl_ms, self.pending_ttl_ms, *images])

    def put_pending_images(self, session_id: str, instance: str, images: Sequence[bytes]) -> bool:
        """Store an unbound session's images again after the store lost them (see ``_PUT_PENDING``)."""
        keys = [self._key(session_id, part) for part in ("vars", "meta", "images", "owner")]
        return bool(self._put_pending(keys=keys, args=[instance, self.ttl_ms, self.pending_ttl_ms, *images]))

    def release(self, session_id: str, instance: str) -> None:
        """Drop ownership, unless another instance has taken the session over meanwhile."""
        self._release(keys=[self._key(session_id, "owner")], args=[instance])

    def exists(self, session_id: str) -> bool:
        return bool(self.redis.exists(self._key(session_id, "meta")))

    def save_delta(self, session_id: str, instance: str, changed: dict[str, bytes], removed: list[str],
                   unpicklable: dict[str, str], refresh: bool, epoch: str, full: bool = False) -> int:
        """Store ``changed`` blobs and drop ``removed`` names, unless another instance owns the session.

        Returns :data:`SAVED`, :data:`MOVED` (the session belongs to another instance) or
        :data:`EPOCH_LOST` (the store's epoch is not ``epoch``: it lost the snapshot this delta
        builds on); nothing is written unless SAVED. An unowned session is claimed. ``full``
        replaces the stored namespace with ``changed``. ``refresh`` also rewrites the metadata
        and the expiry; callers do that on the first save, when the unpicklable names change
        and about once a minute, so a warm call is one Redis round trip.
        """
        keys = [self._key(session_id, p) for p in ("owner", "vars", "meta", "images")] + [self._key.epoch]
        pairs = [item for name, blob in changed.items() for item in (name, blob)]
        args = [instance, self.ttl_ms, int(refresh), json.dumps(unpicklable), time.time(), epoch, int(full),
                len(changed), *pairs, *removed]
        return int(self._save(keys=keys, args=args))

    def load(self, session_id: str) -> StoredSession | None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self._key(session_id, "vars"))
        pipe.hget(self._key(session_id, "meta"), "unpicklable")
        pipe.lrange(self._key(session_id, "images"), 0, -1)
        blobs, unpicklable, images = pipe.execute()
        if unpicklable is None and not blobs and not images:
            return None
        return StoredSession(
            blobs={name.decode(): blob for name, blob in blobs.items()},
            unpicklable=json.loads(unpicklable) if unpicklable else {},
            images=list(images),
        )

    def delete(self, session_id: str) -> None:
        self.redis.delete(*(self._key(session_id, p) for p in ("vars", "meta", "owner", "images")))


class AsyncOpenStore:
    """The one Redis command of an open answered on the HTTP event loop, awaited (``redis.asyncio``),
    so a slow or unreachable Redis never blocks the loop."""

    def __init__(self, client: redis.asyncio.Redis, store: SessionStore):
        self.redis = client
        self._key = _Keys(store.prefix)
        self.ttl_ms, self.pending_ttl_ms = store.ttl_ms, store.pending_ttl_ms
        self._start_fresh = client.register_script(_START_FRESH)

    async def start_fresh(self, session_id: str, instance: str, images: Sequence[bytes] = (),
                          evicted: str | None = None) -> None:
        """:meth:`SessionStore.start_fresh`, awaited."""
        await self._start_fresh(keys=self._key.fresh(session_id, evicted),
                                args=[instance, self.ttl_ms, self.pending_ttl_ms, *images])
