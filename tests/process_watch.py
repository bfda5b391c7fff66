"""Watching what a command starts, so that a test can end the command and check that nothing it started lives on.

A watched command runs with a mark in its environment (:data:`MARK_VARIABLE`), which every
process it starts inherits unless it builds a fresh environment. Its descendants are recorded
while it runs; after it ends, a survivor is a recorded descendant, or any process carrying the
mark, that still runs. A zombie (dead, waiting for a parent to collect its exit status) counts
as ended: it holds no port, memory or file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from deepeyes.utils.processes import port_is_open

MARK_VARIABLE = "DEEPEYES_PROCESS_WATCH"


def running(process: psutil.Process) -> bool:
    """Alive and not a zombie (``is_running`` also checks the pid was not reused)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid} ({' '.join(process.cmdline())[:160]})"
    except psutil.Error:
        return f"pid {process.pid}"


def marked(mark: str) -> list[psutil.Process]:
    """Running processes (of this user: others' environments cannot be read) whose environment carries ``mark``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid != os.getpid() and process.environ().get(MARK_VARIABLE) == mark and running(process):
                found.append(process)
    return found


def marked_survivors(mark: str, timeout: float) -> list[str]:
    """Processes carrying ``mark`` that still run ``timeout`` seconds from now (empty as soon as none does)."""
    deadline = time.monotonic() + timeout
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [describe(p) for p in left]


@dataclass
class Watched:
    """A command started by :func:`start`; ``seen`` holds every descendant observed so far."""

    process: subprocess.Popen
    mark: str
    log_path: Path
    seen: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    ports: set[int] = field(default_factory=set)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.is_file() else ""

    def refresh(self) -> list[psutil.Process]:
        """Record the command's current descendants (and the TCP ports they listen on); returns them."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault((child.pid, child.create_time()), child)
                    for connection in child.net_connections(kind="tcp"):
                        if connection.status == psutil.CONN_LISTEN:
                            self.ports.add(connection.laddr.port)
        return [p for p in self.seen.values() if running(p)]

    def command_lines(self) -> list[str]:
        lines = []
        for process in self.refresh():
            with contextlib.suppress(psutil.Error):
                lines.append(" ".join(process.cmdline()))
        return lines

    def wait_for(self, ready: Callable[[Watched], bool], timeout: float, what: str) -> None:
        """Poll until ``ready(self)``; fail with the log's tail if the command exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready(self):
            assert self.process.poll() is None, f"the command exited ({self.process.returncode}) before {what}:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s; running: {self.command_lines()}\n{self.log()}"
            time.sleep(0.5)
        self.refresh()

    def has(self, *fragments: str) -> bool:
        """Whether, for each fragment, some running descendant's command line contains it."""
        lines = self.command_lines()
        return all(any(fragment in line for line in lines) for fragment in fragments)

    def end(self, signum: int) -> int:
        """Send ``signum`` to the command and collect its exit status."""
        self.refresh()
        os.kill(self.process.pid, signum)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def marked(self) -> list[psutil.Process]:
        """Running processes whose environment carries this command's mark."""
        return marked(self.mark)

    def survivors(self, timeout: float) -> list[str]:
        """What still runs ``timeout`` seconds after the command ended (empty as soon as nothing does)."""
        deadline = time.monotonic() + timeout
        while True:
            left = {p.pid: p for p in self.seen.values() if running(p)} | {p.pid: p for p in self.marked()}
            if not left or time.monotonic() > deadline:
                return [describe(p) for p in left.values()]
            time.sleep(0.2)

    def open_ports(self) -> list[int]:
        """Ports the descendants listened on that still accept connections."""
        return sorted(port for port in self.ports if port_is_open("127.0.0.1", port))

    def cleanup(self) -> None:
        """Kill whatever is left (so a failing test does not leak processes into the next)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for process in [*self.seen.values(), *self.marked()]:
            with contextlib.suppress(psutil.Error):
                if running(process):
                    process.send_signal(signal.SIGKILL)


def start(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Watched:
    """Start ``argv`` (output to ``log_path``) with a fresh mark in its environment."""
    mark = uuid.uuid4().hex
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            env={**os.environ, **(env or {}), MARK_VARIABLE: mark},
        )
    finally:
        log.close()
    return Watched(process, mark, log_path)
