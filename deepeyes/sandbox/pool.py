"""Kernel creation and the pool of ready kernels, so a session open never waits for a start-up.

Every kernel is a fork of the instance's template process (``template.py``: interpreter,
ipykernel, numpy, PIL and matplotlib imported once), so a kernel costs about 0.2 s of CPU
instead of seconds, and its imported code is shared copy-on-write. The pool keeps
``pool_size`` forked kernels ready; a session binds one at its first call without a kernel
round trip, and :meth:`KernelPool.take` waits for a refill at
most until the caller's deadline.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import secrets
import site
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from jupyter_client.connect import write_connection_file

from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.isolation import (
    UidLeases,
    kernel_rlimits,
    template_prefix,
    untraversable_ancestor,
    use_os_isolation,
)
from deepeyes.sandbox.kernel import KernelLayout, SandboxKernel

logger = logging.getLogger(__name__)

_KERNEL_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_TEMPLATE_SCRIPT = Path(__file__).with_name("template.py")
_KERNEL_SIDE = Path(__file__).with_name("kernel_side.py")
_TEMPLATE_START_TIMEOUT_S = 120.0  # interpreter + preloads on a busy machine
_FORK_REPLY_TIMEOUT_S = 30.0
_START_NICE = 10
#: Bound on a pool kernel's start-up (fork to first answer); callers wait at most their own deadline.
KERNEL_START_TIMEOUT_S = 120.0


class KernelUnavailable(RuntimeError):
    """No ready kernel could be had before the caller's deadline."""


class KernelTemplate:
    """The server's handle on its template process: ``fork(request) -> (pid, pidfd)``.

    Thread-safe (requests are serialised; a fork takes a few milliseconds). A template that
    died is started again on the next request.
    """

    def __init__(self, argv_prefix: list[str], env: dict[str, str], preload: list[str], log_path: Path, cwd: Path):
        self._argv_prefix = argv_prefix
        self._env = env
        self._preload = preload
        self._log_path = log_path
        self._cwd = cwd
        self._lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._buffer = b""
        with self._lock:
            self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [*self._argv_prefix, sys.executable, str(_TEMPLATE_SCRIPT), "--fd", str(theirs.fileno()),
                "--preload", json.dumps(self._preload), "--kernel_side", str(_KERNEL_SIDE)]
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env=self._env, cwd=self._cwd, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, pass_fds=[theirs.fileno()])
        theirs.close()
        self._channel, self._buffer = ours, b""
        try:
            hello, _ = self._read(_TEMPLATE_START_TIMEOUT_S)
        except Exception:
            self._stop()
            raise
        logger.info("kernel template process %d ready", hello["pid"])

    def _read(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        assert self._channel is not None
        self._channel.settimeout(timeout)
        fds: list[int] = []
        while b"\n" not in self._buffer:
            try:
                data, received, _, _ = socket.recv_fds(self._channel, 1 << 16, 4)
            except TimeoutError:
                raise RuntimeError(f"the kernel template process did not answer within {timeout:.0f} s") from None
            fds += received
            if not data:
                raise RuntimeError(f"the kernel template process exited; see {self._log_path}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line), fds

    def fork(self, request: dict[str, Any]) -> tuple[int, int]:
        """Fork one kernel; returns its pid and a pidfd the caller owns."""
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                logger.warning("kernel template process is gone; starting it again")
                self._stop()
                self._start()
            assert self._channel is not None
            self._channel.sendall(json.dumps(request).encode() + b"\n")
            reply, fds = self._read(_FORK_REPLY_TIMEOUT_S)
        if "error" in reply:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"kernel template: {reply['error']}")
        return int(reply["pid"]), fds[0]

    def _stop(self) -> None:
        if self._channel is not None:
            self._channel.close()  # the template exits on EOF; its kernels die with it
            self._channel = None
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()


class KernelFactory:
    """Forks kernels with this instance's policy; each gets its own directory and (isolated) a uid
    leased for its lifetime, unique on the host. Call :meth:`close`."""

    def __init__(self, config: SandboxConfig, work_dir: Path):
        self.config = config
        self.work_dir = work_dir
        self.isolated = use_os_isolation(config.security)
        blocker = untraversable_ancestor(work_dir.resolve()) if self.isolated else None
        if blocker is not None:
            raise ValueError(f"sandbox work_dir {work_dir} is unreachable for the kernels' uids: {blocker} "
                             "is not world-traversable (o+x); choose another work_dir")
        security = config.security
        self.uids = UidLeases(security.kernel_uid_base, security.kernel_uid_count, security.uid_lock_dir) \
            if self.isolated else None
        self._serial = itertools.count()
        self.mpl_config_dir = work_dir / "matplotlib"
        self._prepare_font_cache()
        template_dir = work_dir / "template"
        template_dir.mkdir(parents=True, exist_ok=True)
        self.template = KernelTemplate(
            template_prefix(self.isolated, template_dir / "mounts"), self._base_env(template_dir),
            list(config.preload_modules), template_dir / "template.log", template_dir,
        )

    def _prepare_font_cache(self) -> None:
        """Build matplotlib's font cache once, readable by all kernels (which cannot write it)."""
        self.mpl_config_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True,
                       env={**os.environ, "MPLCONFIGDIR": str(self.mpl_config_dir)}, capture_output=True)
        for path in [self.mpl_config_dir, *self.mpl_config_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    def _base_env(self, home: Path) -> dict[str, str]:
        """The whole environment of the template and of every kernel (no secrets, no Redis address)."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(home),
            "IPYTHONDIR": str(home / ".ipython"),
            "TMPDIR": str(home / "tmp"),
            "MPLCONFIGDIR": str(self.mpl_config_dir),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONNOUSERSITE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            **{name: "1" for name in _KERNEL_THREAD_ENV},
        }

    def launch(self) -> SandboxKernel:
        """Fork a kernel; it is usable once its ``wait_ready`` returned."""
        lease = self.uids.acquire() if self.uids is not None else None
        try:
            return self._launch(lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    def _launch(self, lease) -> SandboxKernel:
        serial = next(self._serial)
        layout = KernelLayout(self.work_dir / "kernels" / f"kernel-{serial}")
        uid = lease.uid if lease is not None else None
        for directory in (layout.root, layout.home, layout.tmp, layout.workdir, layout.inputs):
            directory.mkdir(parents=True, exist_ok=True)
        _, info = write_connection_file(str(layout.connection_file), ip=str(layout.root / "zmq"), transport="ipc",
                                        key=secrets.token_hex(16).encode())
        if uid is not None:
            for path in (layout.root, layout.home, layout.tmp, layout.workdir, layout.connection_file):
                os.chown(path, uid, uid)
        os.chmod(layout.root, 0o700)
        os.chmod(layout.inputs, 0o755)
        security = self.config.security
        install = {
            "preload_modules": list(self.config.preload_modules),
            "audit_guards": security.audit_guards,
            "max_snapshot_bytes": int(self.config.max_snapshot_mb * 1024 * 1024),
            "max_output_chars": self.config.max_output_chars,
            "read_roots": [sys.prefix, sys.base_prefix, *site.getsitepackages(), str(layout.root),
                           str(self.mpl_config_dir), *security.read_allowlist],
            "write_roots": [str(layout.workdir), str(layout.home)],
            "import_allowlist": list(security.import_allowlist),
            "snapshot_file": str(layout.snapshot_file) if self.config.snapshot_after_call else None,
        }
        request = {
            "connection_file": str(layout.connection_file),
            "workdir": str(layout.workdir),
            "home": str(layout.home),
            "quota_bytes": security.disk_quota_mb * 2**20,
            "log": str(layout.root / "kernel.log"),
            "uid": uid,
            "private_ns": self.isolated,
            "keep_paths": [str(layout.root.resolve()), str(self.mpl_config_dir.resolve()), *_interpreter_paths()],
            "rlimits": kernel_rlimits(security, self.isolated),
            # Start-up runs at a low priority so a refilling pool does not slow the requests
            # being served; wait_ready restores the normal priority (needs root to lower it again).
            "start_nice": _START_NICE if os.geteuid() == 0 else 0,
            # ipykernel exits when its parent (the template) does, even on SIGKILL.
            "env": {**self._base_env(layout.home), "JPY_PARENT_PID": str(self.template.process.pid)},  # type: ignore[union-attr]
            "install": install,
        }
        pid, pidfd = self.template.fork(request)
        return SandboxKernel(layout, uid, pid, pidfd, info, uid_lease=lease, private_mounts=self.isolated)

    def create(self, timeout_s: float = KERNEL_START_TIMEOUT_S) -> SandboxKernel:
        """Fork a kernel and wait until it is ready (shut down again if it fails to start)."""
        kernel = self.launch()
        try:
            return kernel.wait_ready(time.monotonic() + timeout_s)
        except BaseException:
            kernel.shutdown()
            raise

    def close(self) -> None:
        self.template.close()


class KernelPool:
    """Keeps ``size`` ready kernels; a background thread forks replacements in batches."""

    def __init__(self, factory: KernelFactory, size: int):
        self.factory = factory
        self.size = size
        self._ready: deque[SandboxKernel] = deque()
        self._changed = threading.Condition()  # takers and the refill thread both wait on it
        self._stopped = False
        self.filled_once = threading.Event()
        self._thread = threading.Thread(target=self._refill, name="kernel-pool", daemon=True)

    def start(self) -> KernelPool:
        self._thread.start()
        return self

    @property
    def warm(self) -> int:
        return len(self._ready)

    def take(self, deadline: float) -> SandboxKernel:
        """A ready kernel, waiting for the refill until ``deadline`` (``time.monotonic``).

        Raises :class:`KernelUnavailable` when none is ready by then.
        """
        with self._changed:
            while True:
                while self._ready:
                    kernel = self._ready.popleft()
                    self._changed.notify_all()
                    if kernel.alive():
                        return kernel
                    kernel.shutdown()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopped:
                    raise KernelUnavailable("no sandbox kernel became ready in time (the pool is refilling; "
                                            "raise pool_size for larger bursts)")
                self._changed.wait(min(remaining, 1.0))

    def _refill(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and len(self._ready) >= self.size:
                    self.filled_once.set()
                    self._changed.wait()
                if self._stopped:
                    return
                missing = self.size - len(self._ready)
            if not self._start_batch(missing):
                with self._changed:
                    self._changed.wait(timeout=5.0)  # back off after failures

    def _start_batch(self, count: int) -> bool:
        """Fork ``count`` kernels at once and add each as it becomes ready; False if any failed."""
        launched, ok = [], True
        for _ in range(count):
            try:
                launched.append(self.factory.launch())
            except Exception:
                logger.exception("could not fork a pool kernel")
                ok = False
                break
        deadline = time.monotonic() + KERNEL_START_TIMEOUT_S
        for kernel in launched:
            try:
                kernel.wait_ready(deadline)
            except Exception:
                logger.exception("pool kernel %s failed to start", kernel.name)
                kernel.shutdown()
                ok = False
                continue
            with self._changed:
                if not self._stopped:
                    self._ready.append(kernel)
                    self._changed.notify_all()
                    kernel = None
            if kernel is not None:
                kernel.shutdown()
        return ok

    def close(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._thread.join(timeout=KERNEL_START_TIMEOUT_S + 30)
        while self._ready:
            self._ready.popleft().shutdown()
        self.factory.close()


def _interpreter_paths() -> list[str]:
    """The folders this interpreter imports from (its prefix, site-packages, ``sys.path``).

    A kernel's private ``/tmp`` would hide them when the checkout or its ``.venv`` lives under
    ``/tmp`` (a CI clone often does), and a forked kernel still imports lazily; the template
    binds these back. Nested entries collapse into their outermost folder.
    """
    candidates = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages(), *sys.path) if p}
    existing = sorted(p for p in candidates if p.is_dir())
    outermost = [p for p in existing if not any(q != p and q in p.parents for q in existing)]
    return [str(p) for p in outermost]
