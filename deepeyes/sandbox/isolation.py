"""OS boundaries around the kernels: PID and network namespaces, own uids, resource limits, disk quota.

Kernels are forks of one template process per instance (see ``template.py``). The template is
started through ``unshare --net --mount`` (an empty network namespace and a private mount
table, see below) and stays root; each kernel is forked into a PID namespace of its own, in
which it is process 1: every process it ever makes (``setsid`` or not, through ``ctypes`` or
any other route) lives in that namespace, and Linux kills them all when process 1 exits, so
nothing a session started outlives it. Before any user code runs the kernel then enters a
network namespace of its own (only a down loopback: no route to Redis, the server, the other
kernels or anywhere else), covers its home with a private tmpfs of ``disk_quota_mb``, sets
its rlimits (address space, CPU seconds, processes, file size, no core files) and drops root
for a uid of its own with ``no_new_privs``.

Kernel uids are leased, not computed: :class:`UidLeases` holds an ``flock`` on
``uid_lock_dir/<uid>`` for each kernel's lifetime, so instances on one host never share a uid
however their ports relate or however many kernels they made (the lock dies with its holder,
even a SIGKILLed one). Taking a lease first kills any process still running as that uid (left
by a crashed instance), so a kernel never meets a stranger under its own uid.

The Python interpreter may live under a directory the kernel's uid cannot traverse (e.g. a
pyenv build in ``/root``, mode 0700). Inside the template's mount namespace (shared by its
kernels) that directory is covered with an empty tmpfs and only the interpreter's prefix is
bound back, which also hides the rest of it from model-written code.

The kernel and the server talk over ZMQ ``ipc`` sockets (files in the kernel's private
directory), which do not depend on the network namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from deepeyes.sandbox.config import SandboxSecurityConfig

logger = logging.getLogger(__name__)

#: Tasks (processes + threads) a kernel's uid may have: ipykernel and BLAS use a handful of
#: threads; the limit stops fork bombs even where the in-kernel guards are bypassed.
KERNEL_MAX_TASKS = 128


@functools.cache
def namespaces_available() -> bool:
    """Root with a working ``unshare --net`` (checked once per process)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def use_os_isolation(security: SandboxSecurityConfig) -> bool:
    """Whether kernels get a network namespace and their own uid under this policy."""
    if security.os_isolation == "off":
        return False
    available = namespaces_available()
    if security.os_isolation == "required" and not available:
        raise RuntimeError(
            "sandbox security.os_isolation is 'required' but network namespaces are unavailable "
            "(needs root and `unshare`); set it to 'auto' to fall back to rlimits and audit hooks"
        )
    if not available:
        logger.warning("network namespaces unavailable: kernels run with rlimits and audit hooks only")
    return available


def untraversable_ancestor(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` that other users may not enter (no o+x bit)."""
    for ancestor in [*reversed(path.parents), path]:
        if not os.stat(ancestor).st_mode & stat.S_IXOTH:
            return ancestor
    return None


def interpreter_exposure_script(stash_dir: Path) -> str:
    """Shell commands (run as root in the kernel's mount namespace) that make the interpreter
    reachable for an unprivileged uid; empty when it already is."""
    commands = []
    for index, needed in enumerate(sorted({Path(os.path.realpath(p)) for p in (sys.base_prefix, sys.prefix)})):
        blocker = untraversable_ancestor(needed)
        if blocker is None:
            continue
        stash = stash_dir / f"interpreter-{index}"
        commands += [
            f"mkdir -p {shlex.quote(str(stash))}",
            f"mount --bind {shlex.quote(str(needed))} {shlex.quote(str(stash))}",
            f"mount -t tmpfs -o mode=0755,size=1m deepeyes-hidden {shlex.quote(str(blocker))}",
            f"mkdir -p {shlex.quote(str(needed))}",
            f"mount --bind {shlex.quote(str(stash))} {shlex.quote(str(needed))}",
        ]
    return " && ".join(commands)


def template_prefix(isolated: bool, stash_dir: Path) -> list[str]:
    """The argv that wraps the template process (empty without OS isolation)."""
    if not isolated:
        return []
    prefix = ["unshare", "--net", "--mount", "--"]
    script = interpreter_exposure_script(stash_dir)
    if script:
        prefix += ["sh", "-c", f'{script} && exec "$@"', "sh"]
    return prefix


def kernel_rlimits(security: SandboxSecurityConfig, isolated: bool) -> dict[str, tuple[int, int]]:
    """(soft, hard) rlimits each kernel sets on itself, by ``template.py``'s names.

    ``fsize`` (bytes, ``disk_quota_mb``) caps every file the kernel writes, its log included:
    past it a write fails with ``EFBIG`` (``SIGXFSZ`` is ignored, so Python raises ``OSError``).
    """
    cpu = security.cpu_time_limit_s
    limits = {"as": (security.memory_limit_mb * 2**20,) * 2, "cpu": (cpu, cpu + 5), "core": (0, 0),
              "fsize": (security.disk_quota_mb * 2**20,) * 2}
    if isolated:  # RLIMIT_NPROC counts per uid, so it only makes sense with a uid of its own
        limits["nproc"] = (KERNEL_MAX_TASKS, KERNEL_MAX_TASKS)
    return limits


def processes_of_uid(uid: int) -> list[int]:
    """Pids of live (not zombie) processes whose real, effective or saved uid is ``uid``."""
    wanted = str(uid).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{name}/status", "rb") as status:
            zombie = False
            for line in status:
                if line.startswith(b"State:"):
                    zombie = line.split()[1] in (b"Z", b"X")
                elif line.startswith(b"Uid:"):
                    if not zombie and wanted in line.split()[1:4]:
                        found.append(int(name))
                    break
    return found


def kill_uid(uid: int, rounds: int = 50) -> int:
    """SIGKILL every process of ``uid`` until none is left (each round kills what it finds, so a
    forking process is outrun); returns how many were killed. Raises ``RuntimeError`` if some
    remain after ``rounds`` rounds."""
    killed = 0
    for _ in range(rounds):
        pids = processes_of_uid(uid)
        if not pids:
            return killed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.01)
    raise RuntimeError(f"processes of uid {uid} survive SIGKILL: {processes_of_uid(uid)}")


class UidLease:
    """One leased kernel uid; :meth:`release` (idempotent) gives it back."""

    def __init__(self, uid: int, fd: int):
        self.uid = uid
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


class UidLeases:
    """Kernel uids unique on this host: ``[base, base + count)``, one ``flock``ed file per uid in ``lock_dir``.

    Thread-safe. Raises ``RuntimeError`` from :meth:`acquire` when every uid is taken.
    """

    def __init__(self, base: int, count: int, lock_dir: str | Path):
        if count < 1:
            raise ValueError("kernel_uid_count must be >= 1")
        self.base, self.count = base, count
        self.lock_dir = Path(lock_dir)
        self.lock_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._next = secrets.randbelow(count)  # instances starting together do not race for the same uids
        self._lock = threading.Lock()

    def acquire(self) -> UidLease:
        with self._lock:
            start, self._next = self._next, (self._next + 1) % self.count
        for step in range(self.count):
            uid = self.base + (start + step) % self.count
            fd = os.open(self.lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                leftovers = kill_uid(uid)
            except BaseException:
                os.close(fd)
                raise
            if leftovers:
                logger.warning("killed %d leftover processes of kernel uid %d", leftovers, uid)
            with self._lock:
                self._next = (start + step + 1) % self.count
            return UidLease(uid, fd)
        raise RuntimeError(f"all {self.count} kernel uids from {self.base} are in use (kernel_uid_count)")
