"""One sandboxed Jupyter kernel: its process, its ZMQ client, and one execute round trip.

Kernels are forks of the instance's template process (see ``template.py`` and
:class:`deepeyes.sandbox.pool.KernelTemplate`); the server holds a pidfd of each, so signals
and liveness checks can never hit a recycled pid. Kernels use ZMQ ``ipc`` sockets, reachable
from outside their empty network namespaces. An isolated kernel is process 1 of its own PID
namespace, so once its pidfd reports it gone, every process it made is gone too (Linux kills
and reaps them before the namespace's process 1 finishes exiting).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from jupyter_client import BlockingKernelClient

from deepeyes.sandbox.isolation import UidLease
from deepeyes.sandbox.result import CappedText, strip_ansi

logger = logging.getLogger(__name__)

_POLL_S = 0.2  # how often a waiting execute checks that the kernel process is still alive
_EXIT_WAIT_S = 30.0  # how long shutdown waits for a killed kernel (and every process of its PID namespace) to be gone


class KernelDied(RuntimeError):
    """The kernel process exited (killed, out of memory, CPU limit, ``os._exit``).

    ``started`` says whether the code had begun running; if not, it is safe to run it again
    on a replacement kernel.
    """

    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started


class KernelHung(RuntimeError):
    """The kernel did not come back from an interrupt within the grace period."""


class KernelCallError(RuntimeError):
    """A ``__deepeyes__`` helper raised inside the kernel."""


@dataclass
class KernelOutput:
    """Everything one execute request produced, before it becomes an ``ExecutionResult``."""

    stdout: CappedText
    stderr: CappedText
    result: CappedText
    images: list[str] = field(default_factory=list)  # base64 PNG as sent by the kernel
    error_name: str = ""
    error_value: str = ""
    timed_out: bool = False
    user_expressions: dict[str, Any] = field(default_factory=dict)


@dataclass
class KernelLayout:
    """A kernel's private directory: connection file and sockets, home, session files."""

    root: Path

    @property
    def connection_file(self) -> Path:
        return self.root / "connection.json"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tmp(self) -> Path:
        """TMPDIR of the kernel (library scratch files stay out of the session directory)."""
        return self.root / "home" / "tmp"

    @property
    def workdir(self) -> Path:
        """The session directory: the kernel's cwd and the only place it may write."""
        return self.root / "work"

    @property
    def snapshot_file(self) -> Path:
        """Where the kernel leaves the snapshot delta of its last successful user cell: outside its
        home, so a session that filled its disk quota is still snapshotted (the file is bounded by
        ``RLIMIT_FSIZE``); the kernel opens it before its guards are installed."""
        return self.root / "snapshot.json"

    @property
    def inputs(self) -> Path:
        """Files the server hands to the kernel (session images, snapshots to restore)."""
        return self.root / "inputs"


class SandboxKernel:
    """A forked kernel; not thread-safe (the session that owns it serialises calls).

    ``pidfd`` is owned by this object (closed by :meth:`shutdown`). The kernel is usable once
    :meth:`wait_ready` returned.
    """

    def __init__(self, layout: KernelLayout, uid: int | None, pid: int, pidfd: int, connection_info: dict[str, Any],
                 uid_lease: UidLease | None = None, private_mounts: bool = False):
        self.layout = layout
        self.uid = uid
        self._uid_lease = uid_lease
        #: The kernel's home (and session directory) is a tmpfs in its own mount namespace: the
        #: server does not see what it holds.
        self.private_mounts = private_mounts
        self.name = layout.root.name
        self.pid = pid
        self._pidfd: int | None = pidfd
        # One ZMQ context (and IO thread) for all kernels of the instance, not one per kernel.
        client = BlockingKernelClient(context=zmq.Context.instance())
        client.load_connection_info(connection_info)
        # No heartbeat channel: liveness is the pidfd (``alive``), and the channel would be a thread
        # per kernel waking every second to take the GIL from the event loop answering opens.
        client.start_channels(hb=False)
        self.client: BlockingKernelClient | None = client

    # ----------------------------------------------------------------- lifecycle
    def wait_ready(self, deadline: float) -> SandboxKernel:
        """Block until the kernel answers and its guards are installed (``time.monotonic`` deadline).

        Raises :class:`KernelDied` if it exits, :class:`TimeoutError` past the deadline and
        :class:`KernelCallError` if ``kernel_side.install`` did not run.
        """
        while True:
            if not self.alive():
                raise KernelDied(f"kernel {self.name} exited during start-up; see {self.layout.root / 'kernel.log'}",
                                 started=False)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"kernel {self.name} was not ready in time")
            try:
                self.client.wait_for_ready(timeout=min(1.0, remaining))  # type: ignore[union-attr]
                break
            except RuntimeError:
                continue
        status = self.call("__deepeyes__.status()", timeout=max(deadline - time.monotonic(), 1.0))
        if status.get("pid") != self.pid:
            raise KernelCallError(f"kernel {self.name} reports pid {status.get('pid')}, expected {self.pid}")
        self._normal_priority()
        return self

    def _normal_priority(self) -> None:
        """Undo the low start-up priority on every thread (nice is per thread on Linux)."""
        with contextlib.suppress(FileNotFoundError):
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.setpriority(os.PRIO_PROCESS, int(task), 0)

    def alive(self) -> bool:
        if self._pidfd is None:
            return False
        return not _exited(self._pidfd, 0.0)

    def interrupt(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGINT)

    def shutdown(self) -> None:
        """Kill the kernel and its process group (it never holds state worth a graceful exit), remove its files."""
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        if self._pidfd is not None:
            if self.alive():  # its process group (the kernel called setsid) is still its own
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            gone = _exited(self._pidfd, _EXIT_WAIT_S)
            os.close(self._pidfd)
            self._pidfd = None
            if not gone:
                logger.error("kernel %s did not exit within %.0f s of SIGKILL", self.name, _EXIT_WAIT_S)
        if self._uid_lease is not None:
            # Its PID namespace is gone with it; the next holder of the uid kills any straggler anyway.
            self._uid_lease.release()
            self._uid_lease = None
        shutil.rmtree(self.layout.root, ignore_errors=True)

    # ----------------------------------------------------------------- execution
    def execute(self, code: str, timeout: float, *, silent: bool = False, store_history: bool = True,
                user_expressions: dict[str, str] | None = None, interrupt_grace_s: float = 3.0,
                max_output_chars: int = 20000) -> KernelOutput:
        """Run ``code`` and collect its output; interrupt it after ``timeout`` seconds.

        Raises :class:`KernelDied` if the process exits and :class:`KernelHung` if it does not
        answer an interrupt within ``interrupt_grace_s``; in both cases the kernel is unusable.
        """
        client = self.client
        if client is None or not self.alive():
            raise KernelDied(f"kernel {self.name} is not running", started=False)
        out = KernelOutput(*(CappedText(max_output_chars) for _ in range(3)))
        msg_id = client.execute(code, silent=silent, store_history=store_history,
                                user_expressions=user_expressions or {}, allow_stdin=False, stop_on_error=False)
        deadline = time.monotonic() + timeout
        started = False
        while True:
            now = time.monotonic()
            if now >= deadline:
                if out.timed_out:
                    raise KernelHung(f"kernel {self.name} did not return within {interrupt_grace_s:.0f} s of an interrupt")
                out.timed_out = True
                self.interrupt()
                deadline = now + interrupt_grace_s
            try:
                msg = client.get_iopub_msg(timeout=min(_POLL_S, max(deadline - now, 0.001)))
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"kernel {self.name} died", started=started) from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            started = True
            if self._absorb(msg, out):
                break
        out.user_expressions = self._reply(msg_id, deadline=time.monotonic() + max(interrupt_grace_s, 5.0))
        return out

    def _absorb(self, msg: dict[str, Any], out: KernelOutput) -> bool:
        """Fold one IOPub message into ``out``; True once the kernel is idle again."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            (out.stdout if content.get("name") == "stdout" else out.stderr).add(content.get("text", ""))
        elif kind in ("display_data", "execute_result"):
            data = content.get("data", {})
            if "image/png" in data:
                out.images.append(data["image/png"])
            elif kind == "execute_result":
                out.result.add(data.get("text/plain", ""))
        elif kind == "error":
            out.error_name, out.error_value = content.get("ename", ""), content.get("evalue", "")
            lines = (strip_ansi(line).rstrip("\n") for line in content.get("traceback", []))
            out.stderr.add("\n".join(line for line in lines if line) + "\n")
        elif kind == "status":
            for name, dropped in (content.get("output_cut") or {}).items():  # cut in the kernel as it streamed
                if name in ("stdout", "stderr", "result"):
                    getattr(out, name).dropped_upstream(int(dropped))
            return content.get("execution_state") == "idle"
        return False

    def _reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        """The execute_reply's ``user_expressions`` (sent just before the idle status)."""
        while time.monotonic() < deadline:
            try:
                reply = self.client.get_shell_msg(timeout=_POLL_S)  # type: ignore[union-attr]
            except queue.Empty:
                if not self.alive():
                    raise KernelDied(f"kernel {self.name} died") from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"].get("user_expressions", {}) or {}
        raise KernelHung(f"kernel {self.name} sent no execute reply")

    def take_snapshot(self) -> dict[str, Any] | None:
        """The delta the last successful user cell left behind (None after a failed cell)."""
        path = self.layout.snapshot_file
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        if not text:
            return None
        os.truncate(path, 0)  # emptied, not removed: the kernel keeps writing through its descriptor
        try:
            delta = json.loads(text)
        except ValueError as exc:
            raise KernelCallError(f"unreadable snapshot from kernel {self.name}: {exc}") from exc
        if "error" in delta:
            raise KernelCallError(f"snapshot failed in the kernel: {delta['error']}")
        return delta

    def call(self, expression: str, timeout: float = 60.0) -> dict[str, Any]:
        """Evaluate a ``__deepeyes__`` helper and parse the JSON it returns."""
        out = self.execute("", timeout=timeout, silent=True, store_history=False,
                           user_expressions={"value": expression})
        return _parse_expression(out.user_expressions.get("value"), expression)


def _exited(pidfd: int, timeout_s: float) -> bool:
    """Whether the process behind ``pidfd`` exited, waiting up to ``timeout_s`` (a pidfd turns readable then).

    ``poll``, not ``select``: an instance holds more descriptors than ``select``'s 1024.
    """
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(int(timeout_s * 1000)))


def _parse_expression(value: dict[str, Any] | None, expression: str) -> dict[str, Any]:
    """Decode a user-expression result whose repr is JSON (see ``kernel_side._JsonReply``)."""
    if not value or value.get("status") != "ok":
        detail = f"{value.get('ename')}: {value.get('evalue')}" if value else "no reply"
        raise KernelCallError(f"{expression.partition('(')[0]} failed in the kernel: {detail}")
    return json.loads(value["data"]["text/plain"])
