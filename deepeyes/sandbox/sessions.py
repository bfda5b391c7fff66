"""Sessions of one sandbox instance: which kernel serves which session, and their life cycle.

A session is pinned to one kernel while it lives here. Its user namespace is snapshotted to
Redis after every successful call (as a delta, only changed names) and before eviction, so
that a lost kernel, an idle eviction or a lost instance all recover the same way: a fresh
kernel from the pool plus the last snapshot.

``max_sessions`` is a hard bound: a session holds a slot from the moment it is admitted (its
open, or its first call here) until its kernel is gone. A caller needing a slot evicts the
least recently used idle session or waits for one to become idle, never past its own
deadline; kernels are never reused between sessions (each is a fresh fork, see ``template.py``).

An open only takes a slot and makes one Redis round trip (which also stores its images): its
kernel is bound from the pool at the session's first call, within that call's timeout, and
loads the images before the code runs. A burst of opens thus costs neither kernel round
trips nor pool refills, and evicting a session that never ran code frees its slot without a
kernel to stop (its images wait in Redis, for ``session_ttl_s`` at most).

Redis is a copy; while a session's kernel lives here, the kernel is the truth. So a call
whose code ran reports its result even when its snapshot could not be written (the session
is marked for a full snapshot, retried in the background once Redis answers); a session
whose state is not safely in Redis is never evicted; and when Redis comes back empty or
restarted (its epoch or ``run_id`` changed, see ``store.py``) every live session here is
snapshotted again in full, the images of sessions opened here and never called included (kept
in memory until their first call). Only what needs Redis and cannot do without it (a session
that is not live here, an open) fails, with :class:`StoreUnavailable` (HTTP 503).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import pickle
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import redis

from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.kernel import (
    KernelCallError,
    KernelDied,
    KernelHung,
    KernelOutput,
    SandboxKernel,
)
from deepeyes.sandbox.pool import KernelPool, KernelUnavailable
from deepeyes.sandbox.result import ExecutionResult
from deepeyes.sandbox.store import EPOCH_LOST, MOVED, AsyncOpenStore, SessionStore

logger = logging.getLogger(__name__)
T = TypeVar("T")

_SNAPSHOT_EXPRESSION = "__deepeyes__.snapshot()"
_FULL_SNAPSHOT_EXPRESSION = "__deepeyes__.snapshot(True)"
_POLICY_ERROR = "SandboxPolicyError"
_KERNEL_FAILURES = (KernelDied, KernelHung, KernelCallError, KernelUnavailable)
_MIN_RUN_S = 0.5  # the code always gets this long, even when binding a kernel used up the call's timeout
_REFRESH_EVERY_S = 60.0  # how often a busy session rewrites its Redis metadata and expiry
#: How often the store watcher asks Redis whether it restarted or lost its data, and retries
#: the snapshots and deletions that failed while it was unreachable.
STORE_CHECK_S = 0.5


def session_tag(session_id: str) -> str:
    """What logs say instead of a session id (an id is enough to read or wipe a session):
    a short, stable hash that still lets one follow a session through the log."""
    return "#" + hashlib.blake2b(session_id.encode(), digest_size=6).hexdigest()


class StoreUnavailable(RuntimeError):
    """Redis is unreachable (or loading) and the request cannot be served without it; retry later."""


class SessionInputError(ValueError):
    """The caller sent something the session cannot use (e.g. an unreadable image)."""


class CapacityError(RuntimeError):
    """No slot or no kernel could be had before the caller's deadline (the instance is full and busy)."""


@dataclass
class Session:
    session_id: str
    #: None until the first call binds a pool kernel (an open binds none).
    kernel: SandboxKernel | None = None
    last_used: float = field(default_factory=time.monotonic)
    refreshed_at: float = 0.0  # last time its Redis keys' metadata and expiry were rewritten
    #: The kernel may hold state its Redis snapshot lacks (a failed or interrupted call ran
    #: since the last save); only such sessions need a snapshot before eviction.
    unsaved: bool = False
    #: Redis lacks (part of) this session's state (a snapshot write failed, or Redis lost its
    #: data): the next save must be a full snapshot, and the session must not be evicted before.
    needs_full_save: bool = False
    #: The open's images, kept here until the first call binds a kernel (so a Redis that loses
    #: them can be given them again); None once bound or when the open had none.
    images: list[bytes] | None = None


class SessionManager:
    """Thread-safe: calls on one session are serialised, different sessions run in parallel."""

    def __init__(self, config: SandboxConfig, store: SessionStore, pool: KernelPool, instance: str):
        self.config = config
        self.store = store
        self.pool = pool
        self.instance = instance
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # protects the two dicts above (each session holds one slot)
        self._slot_freed = threading.Condition(self._guard)  # a slot freed or a session went idle
        self.peak_sessions = 0  # highest number of slot-holding sessions seen (reported by /health)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="session-reaper", daemon=True)
        self._watcher = threading.Thread(target=self._watch_store, name="store-watcher", daemon=True)
        self._store_check = threading.Event()  # wakes the watcher early
        #: Redis answered the last command we sent it; False from a failure until the watcher
        #: (or any later command) sees it answer again.
        self.store_ok = True
        self.epoch = ""  # the store epoch our snapshots build on (see store.py)
        self._run_id = ""
        self._pending_deletes: set[str] = set()  # closed while Redis was unreachable
        self.store_losses = 0  # times Redis was found restarted or emptied (reported by /health)
        self.full_resaves = 0  # full snapshots written after a loss or a failed write

    def start(self) -> SessionManager:
        self.epoch = self.store.ensure_epoch()
        self._run_id = self.store.server_run_id()
        self._reaper.start()
        self._watcher.start()
        return self

    # ----------------------------------------------------------------- public API
    def open(self, session_id: str, images: Sequence[bytes], deadline: float) -> dict:
        """Start ``session_id`` afresh (discarding earlier state) with ``image_1 … image_N``.

        Waits for a slot until ``deadline`` (``time.monotonic``), then raises
        :class:`CapacityError`. That slot and one Redis round trip (storing ``images``, the
        image files' bytes) are all it costs: the first call binds a fresh pool kernel (never
        one that ran code before), which loads the images before the code runs. An image the
        kernel cannot read makes that first call raise :class:`SessionInputError`. Raises
        :class:`StoreUnavailable` (nothing changed) when Redis cannot take the open.
        """
        if not self.store_ok:
            raise StoreUnavailable("Redis is unreachable: a session cannot be opened before it answers")
        with self._lock_for(session_id):
            self._forget_pending_delete(session_id)
            self._discard(session_id)
            session = self._admit(session_id, deadline)
            session.images = list(images) or None
            try:
                self._store_call(self.store.start_fresh, session_id, self.instance, images)
            except BaseException:
                self._discard(session_id)
                raise
        return {"session_id": session_id, "images": len(images), "instance": self.instance, "notes": []}

    async def open_nowait(self, session_id: str, images: Sequence[bytes], store: AsyncOpenStore) -> dict | None:
        """:meth:`open` when it needs no waiting, else None (nothing changed; call :meth:`open`).

        It needs none when Redis answered lately, the session is not busy, has no kernel to
        stop, and a slot is free or held by an idle session that never bound a kernel (evicting
        that one is part of the same Redis command). The Redis command is awaited on ``store``
        (``redis.asyncio``), so the HTTP event loop runs it without ever blocking: only locks
        taken without waiting are held across the await. The slot bound holds as in
        :meth:`open`: an evicted session keeps its slot until its ownership is released, and the
        new session takes that very slot. Raises :class:`StoreUnavailable` when Redis fails.
        """
        if not self.store_ok:
            return None
        lock = self._lock_for(session_id)
        if not lock.acquire(blocking=False):
            return None
        victim: tuple[Session, threading.Lock] | None = None
        try:
            with self._guard:
                if session_id in self._pending_deletes:
                    return None
                current = self._sessions.get(session_id)
                if current is not None and current.kernel is not None:
                    return None  # its kernel must be stopped first
                if current is None and len(self._sessions) >= self.config.max_sessions:
                    victim = self._unbound_idle_victim()
                    if victim is None:
                        return None
                if current is None and victim is None:
                    current = self._sessions[session_id] = Session(session_id)
                    self.peak_sessions = max(self.peak_sessions, len(self._sessions))
                elif current is not None:
                    current.last_used = time.monotonic()  # an unbound session keeps its slot
                if current is not None:
                    current.images, current.needs_full_save = list(images) or None, False
            if victim is None:
                try:
                    await self._store_await(store.start_fresh(session_id, self.instance, images))
                except BaseException:
                    self._discard(session_id)
                    raise
            else:
                await self._take_over_slot(*victim, session_id, images, store)
        finally:
            lock.release()
        return {"session_id": session_id, "images": len(images), "instance": self.instance, "notes": []}

    def _unbound_idle_victim(self) -> tuple[Session, threading.Lock] | None:
        """The least recently used session that never bound a kernel, is idle and whose images
        are safely in Redis, with its lock taken (caller holds ``_guard``; a busy session's lock
        is never waited for)."""
        for session in sorted(self._sessions.values(), key=lambda s: s.last_used):
            if session.kernel is not None or session.needs_full_save:
                continue
            lock = self._locks.get(session.session_id)
            if lock is not None and lock.acquire(blocking=False):
                return session, lock
        return None

    async def _take_over_slot(self, victim: Session, victim_lock: threading.Lock, session_id: str,
                              images: Sequence[bytes], store: AsyncOpenStore) -> None:
        """Start ``session_id`` in the slot of the unbound ``victim``, evicting it in the same
        Redis round trip; releases ``victim_lock``."""
        try:
            await self._store_await(store.start_fresh(session_id, self.instance, images, evicted=victim.session_id))
            with self._guard:
                if self._sessions.get(victim.session_id) is victim:
                    del self._sessions[victim.session_id]
                self._sessions[session_id] = Session(session_id, images=list(images) or None)
                self._slot_freed.notify_all()
        finally:
            victim_lock.release()
        logger.info("evicted session %s", session_tag(victim.session_id))

    def execute(self, session_id: str, code: str, timeout: float) -> ExecutionResult:
        """Run ``code``; binding (and restoring) a kernel counts against ``timeout``.

        A session that cannot get a slot or a kernel within ``timeout`` gets a ``timeout``
        result saying so (the code did not run). A session live here runs without Redis; one
        that must be restored from Redis while it is unreachable raises
        :class:`StoreUnavailable` (the code did not run).
        """
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        try:
            with self._lock_for(session_id):
                self._forget_pending_delete(session_id)
                try:
                    session, notes = self._live_session(session_id, deadline)
                except CapacityError as exc:
                    return ExecutionResult(status="timeout", execution_time=time.perf_counter() - started,
                                           stderr=f"TimeoutError: the sandbox could not start this session within the "
                                                  f"{timeout:g} s limit ({exc}); the code did not run.",
                                           notes=[f"no kernel within the call's timeout: {exc}"])
                for attempt in range(2):
                    run_timeout = max(deadline - time.monotonic(), _MIN_RUN_S)
                    try:
                        out = self._run_once(session, code, run_timeout, notes)
                    except _KERNEL_FAILURES as exc:
                        return self._recover(session, exc, timeout, started, notes)
                    session.last_used = time.monotonic()
                    if self._commit(session, notes) or attempt:
                        break
                    # Another instance took the session over meanwhile: this kernel's state was stale.
                    logger.info("session %s moved to another instance; re-running on its latest state",
                                session_tag(session_id))
                    notes.append("the session had moved to another instance; the code was re-run on its latest state")
                    self._discard(session_id)
                    session, restored = self._live_session(session_id, time.monotonic() + timeout)
                    notes += restored
                return self._result(out, timeout, started, notes)
        finally:
            with self._guard:
                self._slot_freed.notify_all()  # this session is idle again: evictable

    def close(self, session_id: str) -> tuple[bool, list[str]]:
        """End a session here and forget its state everywhere; (whether it was live here, notes).

        With Redis unreachable the kernel is still stopped, and the deletion of the session's
        Redis state is retried once Redis answers (unless the id is used again before).
        """
        notes: list[str] = []
        with self._lock_for(session_id):
            was_live = self._discard(session_id)
            try:
                self._store_call(self.store.delete, session_id)
            except StoreUnavailable:
                with self._guard:
                    self._pending_deletes.add(session_id)
                notes.append("Redis unreachable: the session's stored state will be deleted once it answers")
        with self._guard:
            self._locks.pop(session_id, None)
        return was_live, notes

    def stats(self) -> dict:
        """``sessions``: slot holders (at most ``max_sessions``); ``unbound``: those without a kernel yet;
        ``unsaved``: those whose state Redis lacks (waiting for it); ``store``: ``ok`` or ``unavailable``."""
        with self._guard:
            live, peak = len(self._sessions), self.peak_sessions
            unbound = sum(session.kernel is None for session in self._sessions.values())
            unsaved = sum(session.needs_full_save for session in self._sessions.values())
        return {"sessions": live, "unbound": unbound, "peak_sessions": peak, "max_sessions": self.config.max_sessions,
                "warm_kernels": self.pool.warm, "pool_size": self.pool.size,
                "store": "ok" if self.store_ok else "unavailable", "unsaved": unsaved,
                "store_losses": self.store_losses, "full_resaves": self.full_resaves}

    def shutdown(self) -> None:
        """Stop the reaper and kill every kernel; the Redis snapshots stay for other instances.

        With Redis unreachable the ownership keys are left to expire (one warning, no traceback).
        """
        self._stop.set()
        self._store_check.set()
        with self._guard:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        unreachable = False
        for session in sessions:
            if not unreachable:
                try:
                    self.store.release(session.session_id, self.instance)
                except redis.RedisError as exc:
                    unreachable = True
                    logger.warning("Redis unreachable at shutdown (%s: %s): %d session ownerships are left to expire",
                                   type(exc).__name__, exc, len(sessions))
            if session.kernel is not None:
                session.kernel.shutdown()

    # ----------------------------------------------------------------- Redis health
    def _store_call(self, method: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``method(*args)`` on Redis; a Redis failure becomes :class:`StoreUnavailable` and wakes the watcher."""
        try:
            result = method(*args, **kwargs)
        except redis.RedisError as exc:
            self.store_failed(exc)
            raise StoreUnavailable(f"Redis is unreachable ({type(exc).__name__}: {exc})") from exc
        self.store_ok = True
        return result

    async def _store_await(self, awaitable: Awaitable[T]) -> T:
        try:
            result = await awaitable
        except redis.RedisError as exc:
            self.store_failed(exc)
            raise StoreUnavailable(f"Redis is unreachable ({type(exc).__name__}: {exc})") from exc
        self.store_ok = True
        return result

    def store_failed(self, exc: BaseException) -> None:
        """Note that Redis failed (or did not answer in time): wake the watcher, which says when it is back."""
        if self.store_ok:
            logger.warning("Redis unreachable (%s: %s); live sessions keep running, snapshots are retried",
                           type(exc).__name__, exc)
        self.store_ok = False
        self._store_check.set()

    def _forget_pending_delete(self, session_id: str) -> None:
        """The id is used again: a deferred deletion must not wipe the new session's state."""
        with self._guard:
            self._pending_deletes.discard(session_id)

    def _adopt_store(self, epoch: str, run_id: str | None) -> None:
        """Redis lost (or may have lost) what it held: every live session needs a full snapshot."""
        with self._guard:
            self.epoch = epoch
            if run_id is not None:
                self._run_id = run_id
            sessions = list(self._sessions.values())
            for session in sessions:
                session.needs_full_save = True
        self.store_losses += 1
        logger.warning("Redis restarted or lost its data: re-snapshotting %d live sessions", len(sessions))
        self._store_check.set()

    def _watch_store(self) -> None:
        """Every :data:`STORE_CHECK_S` (sooner after a failure): notice a restarted or emptied
        Redis, and write the snapshots, images and deletions that are still owed."""
        while not self._stop.is_set():
            self._store_check.wait(STORE_CHECK_S)
            self._store_check.clear()
            if self._stop.is_set():
                return
            try:
                run_id = self.store.server_run_id()
                epoch = self.store.ensure_epoch()
            except redis.RedisError as exc:
                self.store_failed(exc)
                self._stop.wait(STORE_CHECK_S)
                continue
            if not self.store_ok:
                logger.info("Redis answers again")
            self.store_ok = True
            if epoch != self.epoch or run_id != self._run_id:
                self._adopt_store(epoch, run_id)
            self._pay_debts()

    def _pay_debts(self) -> None:
        """Full snapshots of sessions that need one (idle ones now, busy ones at the end of their
        call), pending images put back, deferred deletions done."""
        with self._guard:
            owing = [s for s in self._sessions.values() if s.needs_full_save]
            deletes = list(self._pending_deletes)
        for session in owing:
            lock = self._lock_for(session.session_id)
            if not lock.acquire(blocking=False):
                continue  # busy: its call saves in full when it ends
            try:
                with self._guard:
                    if self._sessions.get(session.session_id) is not session:
                        continue
                notes: list[str] = []
                if session.kernel is None:
                    self._put_pending(session)
                elif session.kernel.alive():
                    self._full_save(session, notes)
            except StoreUnavailable:
                return
            finally:
                lock.release()
        for session_id in deletes:
            with self._lock_for(session_id):
                with self._guard:
                    if session_id not in self._pending_deletes:
                        continue
                try:
                    self._store_call(self.store.delete, session_id)
                except StoreUnavailable:
                    return
                with self._guard:
                    self._pending_deletes.discard(session_id)

    def _put_pending(self, session: Session) -> None:
        """Give a Redis that lost them the images of a session opened here and never called."""
        self._store_call(self.store.put_pending_images, session.session_id, self.instance, session.images or [])
        session.needs_full_save = False

    # ----------------------------------------------------------------- session life cycle
    def _lock_for(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def _bind_kernel(self, session: Session, deadline: float) -> None:
        """Give a slot-holding session a ready pool kernel, waiting until ``deadline`` (caller holds its lock)."""
        try:
            session.kernel = self.pool.take(deadline)
        except KernelUnavailable as exc:
            raise CapacityError(str(exc)) from exc

    def _admit(self, session_id: str, deadline: float) -> Session:
        """Register a session that is not live here in one of ``max_sessions`` slots (caller holds its lock).

        Evicts idle sessions (LRU first) or waits for one until ``deadline``, then raises
        :class:`CapacityError`. The session has no kernel yet.
        """
        while True:
            with self._guard:
                if len(self._sessions) < self.config.max_sessions:
                    session = self._sessions[session_id] = Session(session_id)
                    self.peak_sessions = max(self.peak_sessions, len(self._sessions))
                    return session
                by_age = sorted(self._sessions.values(), key=lambda s: s.last_used)
            if any(self._evict(session) for session in by_age):
                continue
            with self._guard:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CapacityError(f"all {self.config.max_sessions} sessions of this instance (max_sessions) "
                                        "are busy")
                self._slot_freed.wait(min(remaining, 0.1))

    def _discard(self, session_id: str) -> bool:
        """Kill a live session's kernel (if it has one) and free its slot (once the kernel is gone)."""
        with self._guard:
            session = self._sessions.get(session_id)
        if session is None:
            return False
        try:
            if session.kernel is not None:
                session.kernel.shutdown()
        finally:
            with self._guard:
                if self._sessions.get(session_id) is session:
                    del self._sessions[session_id]
                self._slot_freed.notify_all()
        return True

    def _live_session(self, session_id: str, deadline: float) -> tuple[Session, list[str]]:
        """The session's kernel here, restoring it from Redis when it is not live (caller holds its lock).

        A session opened here gets its (fresh) kernel now, with the state its open wrote (no
        names; its images, if any, loaded). With per-call snapshots, ownership is checked when the
        snapshot is saved (see ``_commit``); without them it is checked here, before running
        anything. Raises :class:`CapacityError` when no slot or kernel is free by ``deadline``.
        """
        with self._guard:
            session = self._sessions.get(session_id)
        if session is not None and not self.config.snapshot_after_call:
            owner = self._store_call(self.store.owner, session_id)
            if owner not in (None, self.instance):
                logger.info("session %s moved to %s; dropping the local kernel", session_tag(session_id), owner)
                self._discard(session_id)
                session = None
        if session is not None and session.kernel is None:  # opened here, no call yet
            self._bind_kernel(session, deadline)
            try:
                return session, self._restore(session)
            except BaseException:
                self._discard(session_id)
                raise
        if session is not None and session.kernel.alive():
            return session, []
        notes: list[str] = []
        if not self.store_ok:  # restoring needs Redis: fail before taking a slot and a kernel
            raise StoreUnavailable("Redis is unreachable and this session is not live on this instance")
        if session is not None:
            self._discard(session_id)
            notes.append("kernel restarted (the previous one had exited), state restored from the last snapshot")
        session = self._admit(session_id, deadline)
        try:
            self._bind_kernel(session, deadline)
            notes += self._restore(session)
            self._store_call(self.store.claim, session_id, self.instance)
        except BaseException:
            self._discard(session_id)
            raise
        return session, notes

    def _attach(self, session: Session, images: Sequence[bytes]) -> list[str]:
        """Give the session's kernel ``image_1 … image_N`` and save them in its snapshot."""
        kernel = session.kernel
        paths = []
        for index, image in enumerate(images, start=1):
            path = kernel.layout.inputs / f"image_{index}"
            path.write_bytes(image)
            paths.append(str(path))
        try:
            reply = kernel.call(f"__deepeyes__.attach({paths!r})")
        except KernelCallError as exc:
            raise SessionInputError(f"could not load the session images: {exc}") from exc
        notes: list[str] = []
        if self.config.snapshot_after_call:
            self._save(session, reply["snapshot"], notes)
        return notes

    def _restore(self, session: Session) -> list[str]:
        """Load the session's last snapshot, or the images of its open, into its (fresh) kernel.

        Notes say what came back; raises :class:`SessionInputError` if the kernel cannot read
        the images.
        """
        if session.images is not None:  # opened here and never called: Redis holds nothing else
            images, session.images = session.images or [], None
            return self._attach(session, images) if images else []
        stored = self._store_call(self.store.load, session.session_id)
        if stored is None:
            return []
        notes: list[str] = []
        if stored.blobs or stored.unpicklable:
            payload = session.kernel.layout.inputs / "restore.pickle"
            payload.write_bytes(_pickle_blob_dict(stored.blobs))
            try:
                report = session.kernel.call(f"__deepeyes__.restore({str(payload)!r})")
            finally:
                payload.unlink(missing_ok=True)
            notes.append(f"session state restored from its last snapshot ({len(report['restored'])} names)")
            missing = {**stored.unpicklable, **report["failed"]}
            if missing:
                notes.append("not restored (could not be saved or loaded): "
                             + ", ".join(f"{name} ({why})" for name, why in sorted(missing.items())))
        if stored.images:  # an open's images, not loaded before (a saved snapshot would hold them)
            notes += self._attach(session, stored.images)
        return notes

    def _snapshot(self, session: Session) -> bool:
        """Snapshot on demand (before eviction); True once Redis holds the session's state."""
        notes: list[str] = []
        try:
            if session.needs_full_save:
                return self._full_save(session, notes)
            delta = session.kernel.call(_SNAPSHOT_EXPRESSION)
        except _KERNEL_FAILURES as exc:
            logger.warning("session %s: state snapshot failed: %s", session_tag(session.session_id), exc)
            return True  # nothing better can be saved from this kernel
        except StoreUnavailable:
            return False
        return self._save(session, delta, notes) and not session.needs_full_save

    def _commit(self, session: Session, notes: list[str]) -> bool:
        """Save the call's snapshot delta (or, without one, check ownership); False if the session moved.

        A save that fails because Redis is unreachable does not fail the call (its code ran;
        the kernel holds the state): the note says so, and the session is saved in full later.
        """
        delta = None
        if self.config.snapshot_after_call:
            try:
                delta = session.kernel.take_snapshot()
            except KernelCallError as exc:
                notes.append(f"state snapshot failed, the session cannot be restored past this point: {exc}")
        if delta is not None and session.needs_full_save:
            try:
                return self._full_save(session, notes)
            except StoreUnavailable:
                notes.append(_UNSAVED_NOTE)
                return True
            except _KERNEL_FAILURES as exc:
                notes.append(f"state snapshot failed, the session cannot be restored past this point: {exc}")
                return True
        if delta is not None:
            saved = self._save(session, delta, notes)
            session.unsaved = not saved
            return saved
        session.unsaved = True
        try:
            owner = self._store_call(self.store.owner, session.session_id)
            if owner is None:
                self._store_call(self.store.claim, session.session_id, self.instance)
        except StoreUnavailable:
            return True
        return owner in (None, self.instance)

    def _full_save(self, session: Session, notes: list[str]) -> bool:
        """Snapshot the whole namespace and replace the stored one (after Redis lost it, or a
        delta could not be written); False if the session moved. Raises :class:`StoreUnavailable`."""
        for _ in range(3):
            delta = session.kernel.call(_FULL_SNAPSHOT_EXPRESSION)
            result = self._write(session, delta, full=True)
            if result != EPOCH_LOST:
                break
        else:
            raise StoreUnavailable("Redis keeps losing its data")
        if result == MOVED:
            return False
        session.needs_full_save = session.unsaved = False
        session.refreshed_at = time.monotonic()
        self.full_resaves += 1
        self._note_unpicklable(delta, notes)
        return True

    def _save(self, session: Session, delta: dict, notes: list[str]) -> bool:
        """Write a snapshot delta; False if the session moved. A Redis that lost the data the
        delta builds on gets a full snapshot instead (and every other live session too); an
        unreachable one leaves the session marked for a full save and a note in the result."""
        try:
            result = self._write(session, delta, full=False)
            if result == EPOCH_LOST:
                self._adopt_store(self._store_call(self.store.ensure_epoch), None)
                return self._full_save(session, notes)
        except StoreUnavailable:
            session.needs_full_save = session.unsaved = True
            notes.append(_UNSAVED_NOTE)
            return True
        except _KERNEL_FAILURES as exc:
            session.needs_full_save = session.unsaved = True
            notes.append(f"state snapshot failed, the session cannot be restored past this point: {exc}")
            return True
        if result == MOVED:
            return False
        self._note_unpicklable(delta, notes)
        return True

    def _write(self, session: Session, delta: dict, full: bool) -> int:
        changed = {name: base64.b64decode(blob) for name, blob in delta["changed"].items()}
        now = time.monotonic()
        refresh = full or delta["unpicklable_changed"] or now - session.refreshed_at > _REFRESH_EVERY_S
        # A name that became unpicklable must not come back from an older, stale blob.
        removed = [] if full else delta["deleted"] + (list(delta["unpicklable"]) if delta["unpicklable_changed"] else [])
        result = self._store_call(self.store.save_delta, session.session_id, self.instance, changed, removed,
                                  delta["unpicklable"], refresh, self.epoch, full)
        if refresh and result > 0:
            session.refreshed_at = now
        return result

    @staticmethod
    def _note_unpicklable(delta: dict, notes: list[str]) -> None:
        if delta["newly_unpicklable"]:
            names = ", ".join(f"{n} ({delta['unpicklable'][n]})" for n in delta["newly_unpicklable"])
            notes.append(f"not saved in the session snapshot (cannot be pickled): {names}")

    def _run_once(self, session: Session, code: str, timeout: float, notes: list[str]) -> KernelOutput:
        """Run the code; a kernel found dead before the code started is replaced and the code run there."""
        try:
            return self._run(session, code, timeout)
        except KernelDied as exc:
            if exc.started:
                raise
            notes += self._replace_kernel(session, exc)
            return self._run(session, code, timeout)

    def _run(self, session: Session, code: str, timeout: float) -> KernelOutput:
        return session.kernel.execute(code, timeout, interrupt_grace_s=self.config.interrupt_grace_s,
                                      max_output_chars=self.config.max_output_chars)

    def _replace_kernel(self, session: Session, exc: Exception) -> list[str]:
        """Swap a dead or hung kernel for a pool kernel holding the session's last snapshot."""
        logger.warning("session %s: %s; restarting its kernel", session_tag(session.session_id), exc)
        session.kernel.shutdown()  # the session keeps its slot
        session.kernel = self.pool.take(time.monotonic() + self.config.open_timeout_s)
        return ["kernel restarted", *self._restore(session)]

    def _recover(self, session: Session, exc: Exception, timeout: float, started: float,
                 notes: list[str]) -> ExecutionResult:
        """Answer a call whose kernel died or hung, leaving the session on a restored kernel."""
        hung = isinstance(exc, KernelHung)
        reason = (f"Execution timed out after {timeout:g} s and the kernel did not respond to the interrupt"
                  if hung else f"The kernel died while running this code ({exc})")
        try:
            notes += self._replace_kernel(session, exc)
        except _KERNEL_FAILURES as restart_exc:
            self._discard(session.session_id)
            notes.append(f"kernel restart failed: {restart_exc}")
        session.last_used = time.monotonic()
        return ExecutionResult(
            status="timeout" if hung else "error",
            execution_time=time.perf_counter() - started,
            stderr=f"{reason}. The kernel was restarted and the session state restored from its last snapshot; "
                   "changes made by this code are lost.",
            notes=notes,
        )

    def _result(self, out: KernelOutput, timeout: float, started: float, notes: list[str]) -> ExecutionResult:
        stderr = out.stderr.value()
        if out.timed_out:
            status = "timeout"
            stderr += f"\nTimeoutError: execution exceeded the {timeout:g} s limit and was interrupted; the session state is kept."
        elif out.error_name == _POLICY_ERROR:
            status = "denied"
        elif out.error_name:
            status = "error"
        else:
            status = "success"
        return ExecutionResult(
            status=status,
            execution_time=time.perf_counter() - started,
            stdout=out.stdout.value(),
            stderr=stderr,
            result=out.result.value(),
            images=self._images(out.images, notes),
            notes=notes,
        )

    def _images(self, encoded: list[str], notes: list[str]) -> list[bytes]:
        max_bytes = int(self.config.max_image_mb * 1024 * 1024)
        images = []
        for index, data in enumerate(encoded[: self.config.max_images], start=1):
            image = base64.b64decode(data)
            if len(image) > max_bytes:
                notes.append(f"image {index} dropped: {len(image)} bytes is over the {self.config.max_image_mb:g} MB limit")
                continue
            images.append(image)
        if len(encoded) > self.config.max_images:
            notes.append(f"{len(encoded) - self.config.max_images} more images dropped (at most {self.config.max_images} per call)")
        return images

    # ----------------------------------------------------------------- eviction
    def _evict(self, session: Session) -> bool:
        """Snapshot and free an idle session's kernel and slot; False if it is busy right now.

        A session that never got a kernel (opened, no call yet) only releases its ownership in
        Redis: its state there is what its open wrote.
        """
        lock = self._lock_for(session.session_id)
        if not lock.acquire(blocking=False):
            return False
        try:
            with self._guard:
                if self._sessions.get(session.session_id) is not session:
                    return False
            # The session stays counted until its snapshot is saved, its ownership released and
            # its kernel gone, so a caller that sees the count drop also sees the session free
            # in Redis, and the live kernels never exceed max_sessions.
            # While Redis is unreachable, or lacks this session's state, nothing is evicted: the
            # kernel (or, unbound, the images kept here) is the only copy, and a later call
            # could not be restored anyway.
            if not self.store_ok or (session.kernel is None and session.needs_full_save):
                return False
            needs_snapshot = session.kernel is not None and (session.unsaved or session.needs_full_save)
            if needs_snapshot and session.kernel.alive() and not self._snapshot(session):
                return False
            try:
                self._store_call(self.store.release, session.session_id, self.instance)
            except StoreUnavailable:
                return False
            try:
                if session.kernel is not None:
                    session.kernel.shutdown()
            finally:
                with self._guard:
                    self._sessions.pop(session.session_id, None)
                    self._slot_freed.notify_all()
            logger.info("evicted session %s", session_tag(session.session_id))
            return True
        finally:
            lock.release()

    def _reap_idle(self) -> None:
        period = max(0.5, min(self.config.session_ttl_s / 4, 30.0))
        while not self._stop.wait(period):
            deadline = time.monotonic() - self.config.session_ttl_s
            with self._guard:
                idle = [s for s in self._sessions.values() if s.last_used < deadline]
            for session in idle:
                self._evict(session)


_UNSAVED_NOTE = ("state snapshot not saved: Redis is unreachable; the session's state is safe in its live kernel "
                 "and will be saved in full once Redis answers")


def _pickle_blob_dict(blobs: dict[str, bytes]) -> bytes:
    """The restore payload: a plain dict of bytes (the kernel unpickles each blob itself)."""
    return pickle.dumps(blobs, protocol=pickle.HIGHEST_PROTOCOL)
