"""Sessions of one sandbox instance: which kernel serves which session, and their life cycle.

A session is pinned to one kernel while it lives here. Its user namespace is snapshotted to
Redis after every successful call (as a delta, only changed names) and before eviction, so
that a lost kernel, an idle eviction or a lost instance all recover the same way: a fresh
kernel from the pool plus the last snapshot.
"""

from __future__ import annotations

import base64
import logging
import pickle
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.kernel import (
    KernelCallError,
    KernelDied,
    KernelHung,
    KernelOutput,
    SandboxKernel,
)
from deepeyes.sandbox.pool import KernelPool
from deepeyes.sandbox.result import ExecutionResult
from deepeyes.sandbox.store import SessionStore

logger = logging.getLogger(__name__)

_SNAPSHOT_EXPRESSION = "__deepeyes__.snapshot()"
_POLICY_ERROR = "SandboxPolicyError"
_KERNEL_FAILURES = (KernelDied, KernelHung, KernelCallError)
_REFRESH_EVERY_S = 60.0  # how often a busy session rewrites its Redis metadata and expiry


class SessionInputError(ValueError):
    """The caller sent something the session cannot use (e.g. an unreadable image)."""



@dataclass
class Session:
    session_id: str
    kernel: SandboxKernel
    last_used: float = field(default_factory=time.monotonic)
    refreshed_at: float = 0.0  # last time its Redis keys' metadata and expiry were rewritten


class SessionManager:
    """Thread-safe: calls on one session are serialised, different sessions run in parallel."""

    def __init__(self, config: SandboxConfig, store: SessionStore, pool: KernelPool, instance: str):
        self.config = config
        self.store = store
        self.pool = pool
        self.instance = instance
        self._sessions: dict[str, Session] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # protects the two dicts above
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_idle, name="session-reaper", daemon=True)

    def start(self) -> SessionManager:
        self._reaper.start()
        return self

    # ----------------------------------------------------------------- public API
    def open(self, session_id: str, images: Sequence[bytes]) -> dict:
        """Start ``session_id`` afresh (discarding earlier state) with ``image_1 … image_N``."""
        with self._lock_for(session_id):
            self._discard(session_id)
            self.store.delete(session_id)
            self._make_room()
            kernel = self.pool.take()
            try:
                self._attach(kernel, images)
            except KernelCallError as exc:
                kernel.shutdown()
                raise SessionInputError(f"could not load the session images: {exc}") from exc
            session = Session(session_id, kernel)
            self.store.claim(session_id, self.instance)
            notes = self._snapshot(session) if self.config.snapshot_after_call else []
            self._register(session)
        return {"session_id": session_id, "images": len(images), "instance": self.instance, "notes": notes}

    def execute(self, session_id: str, code: str, timeout: float) -> ExecutionResult:
        started = time.perf_counter()
        with self._lock_for(session_id):
            session, notes = self._live_session(session_id)
            for attempt in range(2):
                try:
                    out = self._run_once(session, code, timeout, notes)
                except _KERNEL_FAILURES as exc:
                    return self._recover(session, exc, timeout, started, notes)
                session.last_used = time.monotonic()
                if self._commit(session, notes) or attempt:
                    break
                # Another instance took the session over meanwhile: this kernel's state was stale.
                logger.info("session %s moved to another instance; re-running on its latest state", session_id)
                notes.append("the session had moved to another instance; the code was re-run on its latest state")
                self._discard(session_id)
                session, restored = self._live_session(session_id)
                notes += restored
            return self._result(out, timeout, started, notes)

    def close(self, session_id: str) -> bool:
        """End a session here and forget its state everywhere; True if it was live here."""
        with self._lock_for(session_id):
            was_live = self._discard(session_id)
            self.store.delete(session_id)
        with self._guard:
            self._locks.pop(session_id, None)
        return was_live

    def stats(self) -> dict:
        with self._guard:
            live = len(self._sessions)
        return {"sessions": live, "warm_kernels": self.pool.warm, "pool_size": self.pool.size}

    def shutdown(self) -> None:
        """Stop the reaper and kill every kernel; the Redis snapshots stay for other instances."""
        self._stop.set()
        with self._guard:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            self.store.release(session.session_id, self.instance)
            session.kernel.shutdown()

    # ----------------------------------------------------------------- session life cycle
    def _lock_for(self, session_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def _register(self, session: Session) -> None:
        with self._guard:
            self._sessions[session.session_id] = session

    def _discard(self, session_id: str) -> bool:
        with self._guard:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.kernel.shutdown()
        return session is not None

    def _live_session(self, session_id: str) -> tuple[Session, list[str]]:
        """The session's kernel here, restoring it from Redis when it is not live (caller holds its lock).

        With per-call snapshots, ownership is checked when the snapshot is saved (see
        ``_commit``); without them it is checked here, before running anything.
        """
        with self._guard:
            session = self._sessions.get(session_id)
        if session is not None and not self.config.snapshot_after_call:
            owner = self.store.owner(session_id)
            if owner not in (None, self.instance):
                logger.info("session %s moved to %s; dropping the local kernel", session_id, owner)
                self._discard(session_id)
                session = None
        if session is not None and session.kernel.alive():
            return session, []
        notes: list[str] = []
        if session is not None:
            session.kernel.shutdown()
            notes.append("kernel restarted (the previous one had exited), state restored from the last snapshot")
        else:
            self._make_room()
        kernel = self.pool.take()
        self._attach(kernel, ())
        session = Session(session_id, kernel)
        notes += self._restore(session)
        self.store.claim(session_id, self.instance)
        self._register(session)
        return session, notes

    def _attach(self, kernel: SandboxKernel, images: Sequence[bytes]) -> None:
        paths = []
        for index, image in enumerate(images, start=1):
            path = kernel.layout.inputs / f"image_{index}"
            path.write_bytes(image)
            paths.append(str(path))
        kernel.call(f"__deepeyes__.attach({str(kernel.layout.workdir)!r}, {paths!r})")

    def _restore(self, session: Session) -> list[str]:
        """Load the session's last snapshot into its (fresh) kernel; notes say what came back."""
        stored = self.store.load(session.session_id)
        if stored is None:
            return []
        payload = session.kernel.layout.inputs / "restore.pickle"
        payload.write_bytes(_pickle_blob_dict(stored.blobs))
        try:
            report = session.kernel.call(f"__deepeyes__.restore({str(payload)!r})")
        finally:
            payload.unlink(missing_ok=True)
        notes = [f"session state restored from its last snapshot ({len(report['restored'])} names)"]
        missing = {**stored.unpicklable, **report["failed"]}
        if missing:
            notes.append("not restored (could not be saved or loaded): "
                         + ", ".join(f"{name} ({why})" for name, why in sorted(missing.items())))
        return notes

    def _snapshot(self, session: Session) -> list[str]:
        """Snapshot on demand (after open, before eviction)."""
        try:
            delta = session.kernel.call(_SNAPSHOT_EXPRESSION)
        except _KERNEL_FAILURES as exc:
            return [f"state snapshot failed: {exc}"]
        notes: list[str] = []
        self._save_delta(session, delta, notes)
        return notes

    def _commit(self, session: Session, notes: list[str]) -> bool:
        """Save the call's snapshot delta (or, without one, check ownership); False if the session moved."""
        delta = None
        if self.config.snapshot_after_call:
            try:
                delta = session.kernel.take_snapshot()
            except KernelCallError as exc:
                notes.append(f"state snapshot failed, the session cannot be restored past this point: {exc}")
        if delta is not None:
            return self._save_delta(session, delta, notes)
        owner = self.store.owner(session.session_id)
        if owner is None:
            self.store.claim(session.session_id, self.instance)
        return owner in (None, self.instance)

    def _save_delta(self, session: Session, delta: dict, notes: list[str]) -> bool:
        changed = {name: base64.b64decode(blob) for name, blob in delta["changed"].items()}
        now = time.monotonic()
        refresh = delta["unpicklable_changed"] or now - session.refreshed_at > _REFRESH_EVERY_S
        # A name that became unpicklable must not come back from an older, stale blob.
        removed = delta["deleted"] + (list(delta["unpicklable"]) if delta["unpicklable_changed"] else [])
        if not self.store.save_delta(session.session_id, self.instance, changed, removed, delta["unpicklable"], refresh):
            return False
        if refresh:
            session.refreshed_at = now
        if delta["newly_unpicklable"]:
            names = ", ".join(f"{n} ({delta['unpicklable'][n]})" for n in delta["newly_unpicklable"])
            notes.append(f"not saved in the session snapshot (cannot be pickled): {names}")
        return True

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
        logger.warning("session %s: %s; restarting its kernel", session.session_id, exc)
        session.kernel.shutdown()
        kernel = self.pool.take()
        self._attach(kernel, ())
        session.kernel = kernel
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
            result=_capped(out.result, self.config.max_output_chars),
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
    def _make_room(self) -> None:
        """Evict least recently used idle sessions while the instance is at ``max_sessions``."""
        with self._guard:
            by_age = sorted(self._sessions.values(), key=lambda s: s.last_used)
        excess = len(by_age) - self.config.max_sessions + 1
        for session in by_age:
            if excess <= 0:
                break
            if self._evict(session):
                excess -= 1

    def _evict(self, session: Session) -> bool:
        """Snapshot and free an idle session's kernel; False if it is busy right now."""
        lock = self._lock_for(session.session_id)
        if not lock.acquire(blocking=False):
            return False
        try:
            with self._guard:
                if self._sessions.get(session.session_id) is not session:
                    return False
            # The session stays counted until its snapshot is saved and its ownership released,
            # so a caller that sees the count drop also sees the session free in Redis.
            try:
                if session.kernel.alive():
                    self._snapshot(session)
                self.store.release(session.session_id, self.instance)
            finally:
                with self._guard:
                    self._sessions.pop(session.session_id, None)
                session.kernel.shutdown()
            logger.info("evicted session %s", session.session_id)
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


def _capped(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n... [output truncated: {len(text) - cap} more characters]"


def _pickle_blob_dict(blobs: dict[str, bytes]) -> bytes:
    """The restore payload: a plain dict of bytes (the kernel unpickles each blob itself)."""
    return pickle.dumps(blobs, protocol=pickle.HIGHEST_PROTOCOL)
