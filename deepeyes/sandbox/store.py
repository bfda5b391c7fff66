"""Session state in Redis, shared by every sandbox instance.

Per session: a hash of per-name cloudpickle blobs (the user namespace, written as deltas), a
hash of metadata (names that could not be pickled, update time), an owner key naming the
instance that holds the session, and, from an open with images until the first snapshot
after they were loaded, a list of those images' bytes (the kernel is bound at the first call). The server only moves these bytes; it never unpickles
them (only the sandboxed kernel does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

#: Apply a snapshot delta unless another instance owns the session (one round trip per call).
#: KEYS: owner, vars, meta, images. ARGV: instance, ttl_ms, refresh (0/1), unpicklable JSON,
#: time, number of changed names, then name/blob pairs, then the names to remove. A saved
#: snapshot holds the session's images (they are loaded before any snapshot is taken), so the
#: pending image list is dropped.
_SAVE_IF_OWNER = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[4])
local changed = tonumber(ARGV[6])
local first_removed = 7 + 2 * changed
if changed > 0 then redis.call('HSET', KEYS[2], unpack(ARGV, 7, first_removed - 1)) end
if #ARGV >= first_removed then redis.call('HDEL', KEYS[2], unpack(ARGV, first_removed, #ARGV)) end
if ARGV[3] == '1' or not owner then
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
#: execute. KEYS: vars, meta, images, owner[, evicted owner]. ARGV: instance, ttl_ms, images...
_START_FRESH = """
if KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if #ARGV > 2 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 3, #ARGV))
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class StoredSession:
    """A session's snapshot as kept in Redis."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    unpicklable: dict[str, str] = field(default_factory=dict)  # name -> why it was not saved
    images: list[bytes] = field(default_factory=list)  # given at the open, not loaded into a kernel yet


class SessionStore:
    """Redis access for session snapshots and ownership (thread-safe: redis-py pools connections)."""

    def __init__(self, client: redis.Redis, state_ttl_s: float, prefix: str = "deepeyes:sandbox"):
        self.redis = client
        self.ttl_ms = int(state_ttl_s * 1000)
        self.prefix = prefix
        self._release = client.register_script(_RELEASE_IF_OWNER)
        self._save = client.register_script(_SAVE_IF_OWNER)
        self._start_fresh = client.register_script(_START_FRESH)

    def _key(self, session_id: str, part: str) -> str:
        return f"{self.prefix}:{session_id}:{part}"

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
        keys = [self._key(session_id, part) for part in ("vars", "meta", "images", "owner")]
        if evicted is not None:
            keys.append(self._key(evicted, "owner"))
        self._start_fresh(keys=keys, args=[instance, self.ttl_ms, *images])

    def release(self, session_id: str, instance: str) -> None:
        """Drop ownership, unless another instance has taken the session over meanwhile."""
        self._release(keys=[self._key(session_id, "owner")], args=[instance])

    def exists(self, session_id: str) -> bool:
        return bool(self.redis.exists(self._key(session_id, "meta")))

    def save_delta(self, session_id: str, instance: str, changed: dict[str, bytes], removed: list[str],
                   unpicklable: dict[str, str], refresh: bool) -> bool:
        """Store ``changed`` blobs and drop ``removed`` names, unless another instance owns the session.

        Returns False (and writes nothing) when the session belongs to another instance. An
        unowned session is claimed. ``refresh`` also rewrites the metadata and the expiry;
        callers do that on the first save, when the unpicklable names change and about once a
        minute, so a warm call is one Redis round trip.
        """
        keys = [self._key(session_id, p) for p in ("owner", "vars", "meta", "images")]
        pairs = [item for name, blob in changed.items() for item in (name, blob)]
        args = [instance, self.ttl_ms, int(refresh), json.dumps(unpicklable), time.time(), len(changed), *pairs, *removed]
        return bool(self._save(keys=keys, args=args))

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
