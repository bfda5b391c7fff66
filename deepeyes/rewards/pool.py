"""Run a function in a worker process under a wall-clock budget, and kill the worker past it.

A maths check is sympy work on text the policy wrote, and some of that text has no
bounded cost: ``9^{9^{9}}`` asks sympy for a 370-million-digit integer in one C call that
no signal interrupts. math-verify's own timeout is ``SIGALRM``, so it only works on the
main thread (its README says so), and the reward server scores on worker threads. A
thread cannot be stopped; a process can. Each check is therefore sent to a worker process;
when the budget runs out the worker is killed (its CPU and memory come back at once) and a
replacement starts loading at once. Workers also run under an address-space cap (Linux),
so a check that allocates without end fails with ``MemoryError`` instead of swapping.

Workers are plain ``python -m deepeyes.rewards.pool`` processes speaking one JSON line per
call on stdin/stdout, not ``multiprocessing`` children: those re-import the caller's
``__main__`` (a script without a ``__main__`` guard, a Ray worker) in every child. A worker
imports its modules once, says ``ready``, and serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deepeyes.utils.processes import spawn

logger = logging.getLogger(__name__)

#: Address space a worker may add to what it holds after loading its modules.
WORKER_MEMORY_BYTES = 2 << 30
#: How long a new worker may take to import its modules (sympy on a busy machine).
START_TIMEOUT_S = 120.0
_READY = "ready"


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


def _serve(preload: list[str], memory_bytes: int) -> None:
    """Worker loop: one ``{"target", "args"}`` line in, one ``{"ok", "value"|"error"}`` line out."""
    replies, sys.stdout = sys.stdout, sys.stderr  # a stray print must not corrupt the protocol
    for module in preload:
        importlib.import_module(module)
    _cap_memory(memory_bytes)
    print(_READY, file=replies, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": True, "value": _resolve(request["target"])(*request["args"])}
        except Exception as exc:  # noqa: BLE001 - any failure of the check is an answer, not a crash
            # The type only: formatting a sympy object inside an error can itself run forever.
            reply = {"ok": False, "error": type(exc).__name__}
        print(json.dumps(reply), file=replies, flush=True)


def _read_line(stream: IO[str], timeout_s: float) -> str | None:
    """One line from a worker's stdout, or ``None`` when none came within ``timeout_s`` (or it closed)."""
    readable, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline() or None if readable else None


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    ready: bool = field(default=False)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class WorkerPool:
    """Up to ``size`` worker processes, started on demand; safe to share across threads."""

    def __init__(self, size: int, preload: tuple[str, ...] = (), memory_bytes: int = WORKER_MEMORY_BYTES):
        self._command = [sys.executable, "-m", __name__, "--memory_bytes", str(memory_bytes), *preload]
        package_root = str(Path(__file__).resolve().parents[2])
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def _spawn(self) -> _Worker:
        # spawn(): killed with the server even by SIGKILL, though asked from a request thread.
        process = spawn(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=self._env)
        return _Worker(process)

    def _take(self) -> _Worker:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        worker = worker or self._spawn()
        if not worker.ready:
            assert worker.process.stdout is not None
            line = _read_line(worker.process.stdout, START_TIMEOUT_S)
            if line is None or line.strip() != _READY:
                worker.stop()
                raise OSError(f"check worker did not start (exit code {worker.process.returncode})")
            worker.ready = True
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start its replacement now, so that it loads while nobody waits."""
        worker.stop()
        with self._lock:
            self._idle.append(self._spawn())

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
            assert worker.process.stdin is not None and worker.process.stdout is not None
            try:
                worker.process.stdin.write(json.dumps({"target": target, "args": list(args)}) + "\n")
                worker.process.stdin.flush()
            except OSError as exc:
                self._replace(worker)
                return Outcome(error=f"worker died ({type(exc).__name__})")
            line = _read_line(worker.process.stdout, timeout_s)
            if line is None:
                timed_out = worker.process.poll() is None
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
    """Entry point of a worker process (started by :class:`WorkerPool`, not by hand)."""
    parser = argparse.ArgumentParser(description="Serve check calls on stdin/stdout for deepeyes.rewards.pool.")
    parser.add_argument("preload", nargs="*", help="modules to import before saying ready")
    parser.add_argument("--memory_bytes", type=int, default=WORKER_MEMORY_BYTES, help="address space added on top of the loaded modules")
    args = parser.parse_args(argv)
    _serve(args.preload, args.memory_bytes)


if __name__ == "__main__":
    main()
