"""Start and stop the local services (redis-server, our HTTP servers, verl's trainer) on loopback.

The CLIs (inference, RL training, evaluation, the demo, the service) and the test fixtures start
whatever the configuration does not point at, and must never leave a process behind, however
the process that started it ends:

- **normal exit or an exception**: every service is a context manager whose exit stops it; any
  still running when the interpreter exits (a tool manager nobody closed) is stopped by an
  :mod:`atexit` handler.
- **SIGTERM**: where the process left SIGTERM at its default action, the first service started
  from the main thread installs a handler that stops every service and then lets the process
  die of SIGTERM as it would have (exit status -15). A program with its own handler (uvicorn,
  Ray) keeps it and shuts down its own way.
- **SIGKILL**, or any death that runs no Python code: each service carries a parent-death
  signal (Linux ``prctl(PR_SET_PDEATHSIG)``, armed between fork and exec), so the kernel
  signals it the moment its starter is gone.

Linux sends the parent-death signal when the *thread* that forked the child ends, not the
process (prctl(2), "the 'parent' in this case is considered to be the thread that created this
process"). A service started from a short-lived thread (a request thread, a replaced thread
pool, a Ray worker's trajectory threads) would be killed as that thread ends. Every child is
therefore forked by one daemon thread per process (:func:`spawn`), which lives as long as the
process does. Ray starts its own cluster processes the same way (``fate_share``,
``ray._private.utils.set_kill_on_parent_death_linux``).

Each service leads its own process group; stopping it signals the group, so what the service
forked itself goes too. Where a grandchild must also die with a SIGKILLed service, the service
starts it with :func:`spawn` (the reward server's check workers) or watches its own parent
(sandbox kernels). A service whose descendants do neither (verl's ``main_ppo``: Ray's dashboard
agents and multiprocessing helpers outlive a killed driver) is started with ``reap_tree``: a
small watcher process (this file run as a script) records its process tree and session, and
kills whatever is left of them when the service stops or this process dies.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``prctl`` option numbers (``<linux/prctl.h>``).
_PR_SET_PDEATHSIG = 1
#: How long the SIGTERM handler gives services to stop before it kills their groups.
_SIGTERM_GRACE_S = 5.0
#: How often a tree reaper records its service's descendants, and how long it keeps killing.
_REAP_INTERVAL_S = 1.0
_REAP_TIMEOUT_S = 10.0


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


# -- the parent-death signal -------------------------------------------------------------------


def _load_prctl() -> Any:
    """libc's ``prctl``, or None off Linux (the atexit and SIGTERM paths still hold there)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return function


_PRCTL = _load_prctl()


def parent_death_available() -> bool:
    """Whether children can be given a parent-death signal here (Linux)."""
    return _PRCTL is not None


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``signum`` when the forking thread ends.

    Resolved in the parent; the child only calls libc. If the parent died between the fork and
    the ``prctl`` (the signal would then never come), the child signals itself. None where the
    platform has no parent-death signal.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), int(signum))

    return arm


class _Forker:
    """One daemon thread per process that forks every child, so that a parent-death signal
    fires when the process ends, not when the thread that asked for the child ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid: int | None = None
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future]] = queue.SimpleQueue()

    def forget(self) -> None:
        """In a forked copy of this process: the thread did not come along, and the lock may be held."""
        self._lock = threading.Lock()
        self._owner_pid = None
        self._thread = None

    def _serve(self) -> None:
        while True:
            job, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._owner_pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._serve, name="deepeyes-forker", daemon=True)
                self._thread.start()
                self._owner_pid = os.getpid()
            thread = self._thread
        if threading.current_thread() is thread:
            return job()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((job, future))
        return future.result()


_FORKER = _Forker()


def spawn(argv: Sequence[str], *, death_signal: int | None = signal.SIGKILL, **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen(argv, **popen_kwargs)`` whose child gets ``death_signal`` when this process dies.

    The fork happens on this process's forker thread (see the module docstring), so the call is
    safe from any thread. ``death_signal`` None: no parent-death signal. ``preexec_fn`` is
    taken; pass ``start_new_session=True`` for a group of the child's own.

    Raises:
        OSError: the program cannot be started (as ``Popen`` raises it).
    """
    if "preexec_fn" in popen_kwargs:
        raise TypeError("spawn() sets preexec_fn itself")
    preexec = die_with_parent(death_signal) if death_signal is not None else None
    return _FORKER.run(lambda: subprocess.Popen(list(argv), preexec_fn=preexec, **popen_kwargs))  # noqa: PLW1509


# -- services ----------------------------------------------------------------------------------

#: Services started by this process and not yet stopped, oldest first (stopped newest first).
_LIVE: dict[int, ManagedProcess] = {}
_atexit_registered = False
_sigterm_checked = False


def _forget_after_fork() -> None:
    """A forked child owns none of its parent's services (its exit must not stop them)."""
    _LIVE.clear()
    _FORKER.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _exited(process: subprocess.Popen) -> bool:
    """Whether ``process`` has ended (also when another frame holds its wait lock: a zombie counts)."""
    if process.poll() is not None:
        return True
    try:
        with open(f"/proc/{process.pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _terminate_all(grace_s: float) -> None:
    """TERM every live service's group, KILL what is left after ``grace_s``. Safe in a signal handler:
    takes no lock and never waits on a ``Popen`` that the interrupted frame may be waiting on."""
    services = list(reversed(list(_LIVE.values())))
    live = [service for service in services if not _exited(service.process)]
    for service in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and not all(_exited(service.process) for service in live):
        time.sleep(0.05)
    for service in live:
        if not _exited(service.process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.process.pid, signal.SIGKILL)
    for service in services:
        _LIVE.pop(id(service), None)
        with contextlib.suppress(Exception):
            service._release_files(final=True)


def _on_sigterm(signum: int, frame: object) -> None:
    """Stop every service, then die of SIGTERM as the default action would have."""
    logger.warning("SIGTERM: stopping the %d service(s) this process started", len(_LIVE))
    _terminate_all(_SIGTERM_GRACE_S)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)
    os._exit(128 + signum)  # only reached if the signal was blocked


def _stop_all_at_exit() -> None:
    for service in reversed(list(_LIVE.values())):
        with contextlib.suppress(Exception):
            service.stop()


def _install_handlers() -> None:
    """The atexit hook, once; the SIGTERM handler, once, from the main thread and over the default action only."""
    global _atexit_registered, _sigterm_checked
    if not _atexit_registered:
        atexit.register(_stop_all_at_exit)
        _atexit_registered = True
    if _sigterm_checked or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_checked = True
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)


class ManagedProcess:
    """A child process in its own process group that dies with this process; stopped (TERM, then KILL) on exit.

    Args:
        argv: the command.
        name: how logs name it.
        log_path: file for its stdout and stderr (appended); None: discarded, unless ``inherit_output``.
        env: variables laid over this process's environment.
        death_signal: what the child receives when this process dies (SIGKILL unless the service
            shuts down cleanly on another, like redis-server and the sandbox server on SIGTERM).
        cwd: working directory.
        inherit_output: share this process's stdout and stderr (a trainer's console) instead.
        reap_tree: also kill, when it stops or this process dies, every process it started
            (recorded once a second) and every member of its session, wherever they re-parent.

    Raises:
        OSError: the program cannot be started.
    """

    def __init__(
        self,
        argv: Sequence[str],
        name: str,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        death_signal: int = signal.SIGKILL,
        cwd: Path | str | None = None,
        inherit_output: bool = False,
        reap_tree: bool = False,
    ):
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.death_signal = death_signal
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self._inherit_output = inherit_output
        self._reap_tree = reap_tree
        self._reaper: subprocess.Popen | None = None
        self._log_file: Any = None
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        if self._inherit_output:
            output: Any = None
        else:
            self._log_file = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
            output = self._log_file or subprocess.DEVNULL
        process = spawn(
            self.argv,
            death_signal=self.death_signal,
            stdout=output,
            stderr=None if self._inherit_output else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self._env,
            cwd=self._cwd,
        )
        _LIVE[id(self)] = self
        _install_handlers()
        if self._reap_tree:
            # Its stdin is the stop request (closed by stop(), or by this process's death).
            self._reaper = spawn([sys.executable, "-I", str(Path(__file__).resolve()), "--reap_tree", str(process.pid)],
                                 death_signal=signal.SIGTERM, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            _await_reaper(self._reaper, self.name)
        logger.info("started %s (pid %d)", self.name, process.pid)
        return process

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Its exit code, once it has ended (``subprocess.TimeoutExpired`` past ``timeout``)."""
        return self.process.wait(timeout=timeout)

    def _terminate(self, timeout: float) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            logger.info("stopped %s", self.name)

    def _stop_reaper(self) -> None:
        """Let the reaper kill what is left of the service's tree, and wait for it."""
        reaper, self._reaper = self._reaper, None
        if reaper is None:
            return
        with contextlib.suppress(OSError):
            reaper.stdin.close()  # type: ignore[union-attr]
        try:
            reaper.wait(timeout=_REAP_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()

    def _release_files(self, final: bool = True) -> None:
        """Close the log file; ``final``: the service will not start again (subclasses remove what they own)."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self, timeout: float = 10.0) -> None:
        """TERM its process group, KILL it after ``timeout`` seconds; idempotent."""
        self._terminate(timeout)
        self._stop_reaper()
        _LIVE.pop(id(self), None)
        self._release_files(final=True)

    def kill(self) -> None:
        """Hard-kill its group (used by failover tests to simulate a lost instance)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._stop_reaper()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- redis-server ----------------------------------------------------------------------------


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run `bash setup.sh` (it installs it with apt)")
    return binary


def redis_ready(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis on ``host:port`` answers ``PING`` (false while it is still loading its data)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ManagedProcess):
    """A ``redis-server`` on loopback that keeps its data across its own restarts (AOF persistence).

    Every write is appended to ``workdir/appendonlydir`` before Redis answers it, and the file is
    fsynced once a second (``appendfsync everysec``, Redis's default for AOF). A restart on the
    same ``workdir`` — :meth:`restart`, or a new ``RedisServer`` on a folder an earlier one used —
    loads everything that was written, so a Redis that crashed or was restarted comes back with
    the sandbox snapshots it held. The cost: each write is also a ``write(2)`` to that file, the
    file holds every stored value (session images included) until Redis rewrites it (when it has
    doubled and is over 64 MB, Redis's defaults; the rewrite forks Redis), and a machine crash
    (not a Redis crash: the data is in the OS's cache) loses up to the last second of writes. No
    RDB snapshots are taken (``save ""``).

    Args:
        port: TCP port (None: a free one).
        host: address to bind.
        workdir: the run's folder for the AOF and ``redis.log``; None: a temporary folder removed on
            :meth:`stop`.
        appendonly: False turns persistence off (a pure cache).

    It gets SIGTERM, not SIGKILL, when this process dies, so it writes out its AOF and exits.

    Raises:
        RuntimeError: redis-server is not installed, or exited before answering.
        TimeoutError: it did not answer ``PING`` within 15 s.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", workdir: Path | None = None, appendonly: bool = True):
        self.host = host
        self.port = port or free_port(host)
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="deepeyes-redis-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", host,
            "--save", "",
            "--appendonly", "yes" if appendonly else "no",
            "--appendfsync", "everysec",
            "--dir", str(self.workdir),
            "--protected-mode", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        super().__init__(argv, name=f"redis-server:{self.port}", log_path=self.workdir / "redis.log", death_signal=signal.SIGTERM)
        self._wait_ready()

    def _wait_ready(self) -> None:
        try:
            wait_until(lambda: redis_ready(self.host, self.port), 15, self.name, self.process)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def aof_dir(self) -> Path:
        """Where Redis 7 keeps its append-only files (``appenddirname``'s default)."""
        return self.workdir / "appendonlydir"

    def restart(self, timeout: float = 10.0) -> None:
        """Stop this Redis (its AOF written out) and start it again on the same port and folder."""
        self._terminate(timeout)
        self._release_files(final=False)
        self.process = self._start()
        self._wait_ready()

    def _release_files(self, final: bool = True) -> None:
        super()._release_files(final)
        if final and self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# -- the tree reaper (this file run as a script) -----------------------------------------------


class _Reap(Exception):
    """Raised by the reaper's SIGTERM handler: its starter died."""


def _process_table() -> dict[int, tuple[int, int, int, str]]:
    """``pid -> (parent pid, session id, start time in clock ticks, state)`` from ``/proc``."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        table[int(name)] = (int(fields[1]), int(fields[3]), int(fields[19]), fields[0].decode())
    return table


def _tree(table: dict[int, tuple[int, int, int, str]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


#: How long a service start waits for its reaper's first look at the tree (interpreter start-up
#: on a loaded 2-core machine took over 3 s: a tree that changed meanwhile went unrecorded).
_REAPER_READY_TIMEOUT_S = 60.0


def _await_reaper(reaper: subprocess.Popen, name: str) -> None:
    """Block until ``reaper`` has recorded the tree once (it writes one line), so that whatever
    the service starts from now on is seen; warn and go on if it never says so."""
    import select

    readable, _, _ = select.select([reaper.stdout], [], [], _REAPER_READY_TIMEOUT_S)
    if not readable or not reaper.stdout.readline():  # type: ignore[union-attr]
        logger.warning("the process-tree reaper of %s did not start within %.0f s", name, _REAPER_READY_TIMEOUT_S)


def _reap_tree(leader: int) -> None:
    """Watch ``leader``'s process tree until told to stop (stdin closed, or SIGTERM), then kill it.

    Every ``_REAP_INTERVAL_S`` the leader's descendants are recorded with their start times (so a
    reused pid is never killed); at the end every recorded process still alive, every member of
    the leader's session and every descendant of those gets SIGKILL, until none is left or
    ``_REAP_TIMEOUT_S`` has passed. A process that leaves both the tree and the session within
    one interval of its start (a daemon's double fork and ``setsid``) is not seen: that would
    take a cgroup or a subreaper above the service.
    """
    import select

    def on_term(signum: int, frame: object) -> None:
        raise _Reap

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    me = os.getpid()
    known: dict[int, int] = {}  # pid -> start time

    def record() -> dict[int, tuple[int, int, int, str]]:
        table = _process_table()
        for pid in _tree(table, leader) | ({leader} if leader in table else set()):
            known.setdefault(pid, table[pid][2])
        return table

    try:
        record()
        sys.stdout.write("recording\n")  # the starter waits for this line (_await_reaper)
        sys.stdout.flush()
        while True:
            record()
            readable, _, _ = select.select([sys.stdin], [], [], _REAP_INTERVAL_S)
            if readable and not os.read(sys.stdin.fileno(), 1024):
                break
    except _Reap:
        pass
    # A second stop request (the starter's SIGTERM after it closed our stdin, then its death
    # signal) must not interrupt the killing it asks for.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.monotonic() + _REAP_TIMEOUT_S
    while time.monotonic() < deadline:
        table = _process_table()
        doomed = {pid for pid, start in known.items() if pid in table and table[pid][2] == start}
        # The session id is the leader's pid: trusted while that pid is the leader or no process.
        if leader not in table or table[leader][2] == known.get(leader):
            doomed |= {pid for pid, (_, session, _, _) in table.items() if session == leader}
        for pid in list(doomed):
            doomed |= _tree(table, pid)
        doomed = {pid for pid in doomed if pid != me and table.get(pid, (0, 0, 0, "Z"))[3] != "Z"}
        if not doomed:
            return
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            known.setdefault(pid, table[pid][2])
        time.sleep(0.1)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--reap_tree":
    _reap_tree(int(sys.argv[2]))
