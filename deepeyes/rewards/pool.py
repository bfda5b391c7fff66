"""Run a function in a worker process under a wall-clock budget, and kill the worker past it.

A maths check is sympy work on text the policy wrote, and some of that text has no
bounded cost: ``9^{9^{9}}`` asks sympy for a 370-million-digit integer in one C call that
no signal interrupts. math-verify's own timeout is ``SIGALRM``, so it only works on the
main thread (its README says so), and the reward server scores on worker threads. A
thread cannot be stopped; a process can. Each check is therefore sent to a worker process;
when the budget runs out the worker is killed (its CPU and memory come back at once) and a
replacement takes its place. Workers also run under an address-space cap (Linux), so a
check that allocates without end fails with ``MemoryError`` instead of swapping.

Replacements are cheap: the pool starts one *template* process (``python -m
deepeyes.rewards.pool``), which imports the modules once and then forks a worker whenever
the pool asks, handing it the pipes the pool sent over a Unix socket. A fork of a loaded
process is ready in milliseconds, where a fresh interpreter importing sympy took 8-10 s on a
busy machine, time every later check waited for (issue 30, item 4). The template is not a
``multiprocessing`` forkserver: those children re-import the caller's ``__main__`` (a script
without a ``__main__`` guard, a Ray worker). Workers speak one JSON line per call on their
pipes, say ``ready`` first, and serve until their input closes. The template is started with
:func:`deepeyes.utils.processes.spawn` and each worker dies with the template
(``PR_SET_PDEATHSIG``), so no check outlives the server, even a SIGKILLed one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deepeyes.utils.processes import die_with_parent, spawn

logger = logging.getLogger(__name__)

#: Address space a worker may add to what it holds after loading its modules.
WORKER_MEMORY_BYTES = 2 << 30
#: How long the template may take to import its modules (sympy on a busy machine), and a fork to answer.
START_TIMEOUT_S = 120.0
_READY = "ready"
_PID = struct.Struct("!i")


@dataclass(frozen=True)
class Outcome:
    """What a call returned, or why it returned nothing (``error``)."""

    value: Any = None
    error: str | None = None


def _cap_memory(extra_bytes: int) -> None:
    """Limit this process's address space to its current size plus ``extra_bytes`` (Linux only)."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = current + extra_bytes if hard == resource.RLIM_INFINITY else min(current + extra_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # no /proc or no RLIMIT_AS (macOS): the wall-clock budget still holds


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(requests: IO[str], replies: IO[str]) -> None:
    """Worker loop: one ``{"target", "args"}`` line in, one ``{"ok", "value"|"error"}`` line out."""
    print(_READY, file=replies, flush=True)
    for line in requests:
        request = json.loads(line)
        try:
            reply = {"ok": True, "value": _resolve(request["target"])(*request["args"])}
        except Exception as exc:  # noqa: BLE001 - any failure of the check is an answer, not a crash
            # The type only: formatting a sympy object inside an error can itself run forever.
            reply = {"ok": False, "error": type(exc).__name__}
        print(json.dumps(reply), file=replies, flush=True)


def _template(control_fd: int, preload: list[str], memory_bytes: int) -> None:
    """The template process: import ``preload``, then fork one worker per request on the control socket.

    A request is one byte with two file descriptors (the worker's input and output pipes);
    the answer is the worker's pid. The template exits when the pool closes the socket.
    """
    sys.stdout = sys.stderr  # a stray print must not reach anything the pool reads
    for module in preload:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    arm_death_signal = die_with_parent(signal.SIGKILL)
    control = socket.socket(fileno=control_fd)
    control.sendall(_READY.encode() + b"\n")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1, 2)
        except OSError:
            return
        if not message or len(fds) != 2:
            return
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                control.close()
                if arm_death_signal is not None:
                    arm_death_signal()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _cap_memory(memory_bytes)
                with open(fds[0], encoding="utf-8") as requests, open(fds[1], "w", encoding="utf-8") as replies:
                    _serve(requests, replies)
            except BaseException:  # noqa: BLE001 - a worker never returns into the template's loop
                os._exit(1)
            os._exit(0)
        for fd in fds:
            os.close(fd)
        control.sendall(_PID.pack(pid))


def _read_line(stream: IO[str], timeout_s: float) -> str | None:
    """One line from a worker's output, or ``None`` when none came within ``timeout_s`` (or it closed)."""
    readable, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() or None if readable else None


def _receive_exactly(control: socket.socket, size: int, timeout_s: float) -> bytes:
    control.settimeout(timeout_s)
    data = b""
    while len(data) < size:
        chunk = control.recv(size - len(data))
        if not chunk:
            raise OSError("the check template closed its socket")
        data += chunk
    return data


@dataclass
class _Worker:
    pid: int
    requests: IO[str]
    replies: IO[str]
    pidfd: int | None = None
    ready: bool = field(default=False)

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self) -> None:
        """Kill the worker (through its pidfd where there is one, so a reused pid is never hit) and close its pipes."""
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass  # already gone
        for closable in (self.requests, self.replies):
            try:
                closable.close()
            except OSError:
                pass
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class _Template:
    """The template process and its control socket (see the module docstring)."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control = ours
        try:
            # spawn(): dies with the server even by SIGKILL, though asked from a request thread.
            self.process = spawn([*command, "--control_fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        try:
            if _receive_exactly(self.control, len(_READY) + 1, START_TIMEOUT_S).strip() != _READY.encode():
                raise OSError("unexpected greeting")
        except OSError as exc:
            self.stop()
            raise OSError(f"check template did not start ({exc}; exit code {self.process.poll()})") from exc

    def fork(self) -> _Worker:
        """A new worker, forked from the loaded template; raises OSError when the template is gone."""
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            socket.send_fds(self.control, [b"F"], [request_read, reply_write])
            (pid,) = _PID.unpack(_receive_exactly(self.control, _PID.size, START_TIMEOUT_S))
        except OSError:
            for fd in (request_read, request_write, reply_read, reply_write):
                os.close(fd)
            raise
        os.close(request_read)
        os.close(reply_write)
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = None
        requests = open(request_write, "w", encoding="utf-8")  # noqa: SIM115 - owned by the worker record
        replies = open(reply_read, encoding="utf-8")  # noqa: SIM115
        return _Worker(pid, requests, replies, pidfd)

    def stop(self) -> None:
        self.control.close()
        self.process.kill()
        self.process.wait()


#: Every running template, so that one lives until :meth:`WorkerPool.close` or the end of the
#: process (its parent-death signal), not until its pool is garbage-collected.
_TEMPLATES: set[_Template] = set()
_TEMPLATES_LOCK = threading.Lock()


class WorkerPool:
    """Up to ``size`` worker processes, forked on demand from one template; safe to share across threads.

    The template and its workers live until :meth:`close` or until this process ends.
    """

    def __init__(self, size: int, preload: tuple[str, ...] = (), memory_bytes: int = WORKER_MEMORY_BYTES):
        self._command = [sys.executable, "-m", __name__, "--memory_bytes", str(memory_bytes), *preload]
        package_root = str(Path(__file__).resolve().parents[2])
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._template: _Template | None = None
        self._template_lock = threading.Lock()

    def _spawn(self) -> _Worker:
        """Fork a worker from the template, starting (or restarting) the template when needed."""
        with self._template_lock:
            for attempt in range(2):
                if self._template is None:
                    self._template = _Template(self._command, self._env)
                    with _TEMPLATES_LOCK:
                        _TEMPLATES.add(self._template)
                try:
                    return self._template.fork()
                except OSError:
                    if attempt:
                        raise
                    logger.warning("check template gone (exit code %s); starting a new one", self._template.process.poll())
                    self._stop_template()
        raise AssertionError("unreachable")

    def _take(self) -> _Worker:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        worker = worker or self._spawn()
        if not worker.ready:
            line = _read_line(worker.replies, START_TIMEOUT_S)
            if line is None or line.strip() != _READY:
                worker.stop()
                raise OSError("check worker did not start")
            worker.ready = True
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and fork its replacement now, so that it is ready before anybody waits."""
        worker.stop()
        try:
            replacement = self._spawn()
        except OSError as exc:
            logger.error("cannot fork a check worker: %s", exc)
            return
        with self._lock:
            self._idle.append(replacement)

    def close(self) -> None:
        """Stop every idle worker and the template (workers in use die with the template)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()
        with self._template_lock:
            self._stop_template()

    def _stop_template(self) -> None:
        if self._template is not None:
            with _TEMPLATES_LOCK:
                _TEMPLATES.discard(self._template)
            self._template.stop()
            self._template = None

    def call(self, target: str, *args: Any, timeout_s: float) -> Outcome:
        """``function(*args)`` in a worker, for ``target`` = ``"module:function"`` (JSON arguments and result).

        The function is named rather than passed so that the caller need not import it (the
        maths module is heavy; only workers load it). Past ``timeout_s`` seconds the worker
        is killed and the outcome says so. Never raises for the function's own failures:
        they come back as ``Outcome.error``.
        """
        with self._slots:
            try:
                worker = self._take()
            except OSError as exc:
                logger.error("cannot start a check worker: %s", exc)
                return Outcome(error=f"no worker process ({exc})")
            try:
                worker.requests.write(json.dumps({"target": target, "args": list(args)}) + "\n")
                worker.requests.flush()
            except OSError as exc:
                self._replace(worker)
                return Outcome(error=f"worker died ({type(exc).__name__})")
            line = _read_line(worker.replies, timeout_s)
            if line is None:
                timed_out = worker.alive()
                self._replace(worker)
                if timed_out:
                    logger.warning("check %s timed out after %g s; worker killed", target, timeout_s)
                    return Outcome(error=f"timed out after {timeout_s:g} s")
                return Outcome(error="worker died")
            with self._lock:
                self._idle.append(worker)
        reply = json.loads(line)
        return Outcome(value=reply["value"]) if reply["ok"] else Outcome(error=reply["error"])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the template process (started by :class:`WorkerPool`, not by hand)."""
    parser = argparse.ArgumentParser(description="Fork check workers for deepeyes.rewards.pool (started by the pool, not by hand).")
    parser.add_argument("preload", nargs="*", help="modules to import before saying ready")
    parser.add_argument("--memory_bytes", type=int, default=WORKER_MEMORY_BYTES, help="address space a worker may add on top of the loaded modules")
    parser.add_argument("--control_fd", type=int, required=True, help="the Unix socket the pool sends fork requests on")
    args = parser.parse_args(argv)
    _template(args.control_fd, args.preload, args.memory_bytes)


if __name__ == "__main__":
    main()
