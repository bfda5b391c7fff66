"""Start and stop the local services (redis-server, our HTTP servers) on loopback.

The CLIs (inference, RL training, evaluation) and the test fixtures start whatever the
configuration does not point at, and must never leave a process behind: every service is
a context manager whose exit terminates the whole process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    """Poll ``check`` until it is true; fail early if ``process`` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it became ready")
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


class ManagedProcess:
    """A child process in its own process group, stopped (TERM, then KILL) on exit."""

    def __init__(self, argv: Sequence[str], name: str, log_path: Path | None = None, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self._log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        logger.info("started %s (pid %d)", name, self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            logger.info("stopped %s", self.name)
        if hasattr(self._log_file, "close"):
            self._log_file.close()

    def kill(self) -> None:
        """Hard-kill (used by failover tests to simulate a lost instance)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run `bash setup.sh` (it installs it with apt)")
    return binary


class RedisServer(ManagedProcess):
    """A throw-away ``redis-server`` on loopback with no persistence."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", workdir: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="deepeyes-redis-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--protected-mode", "no",
        ]
        super().__init__(argv, name=f"redis-server:{self.port}", log_path=self.workdir / "redis.log")
        wait_until(lambda: port_is_open(host, self.port), 15, self.name, self.process)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
