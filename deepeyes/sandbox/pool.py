"""Pre-started kernels, so a new session takes a warm one instead of waiting for a start-up.

Starting a kernel (interpreter, ipykernel, numpy/PIL/matplotlib, guards) takes seconds; the
pool keeps ``pool_size`` ready in the background and a session start only binds one.
"""

from __future__ import annotations

import itertools
import logging
import os
import site
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.isolation import untraversable_ancestor, use_os_isolation
from deepeyes.sandbox.kernel import KernelLayout, SandboxKernel

logger = logging.getLogger(__name__)

_KERNEL_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class KernelFactory:
    """Starts kernels with this instance's policy; each gets its own directory and uid."""

    def __init__(self, config: SandboxConfig, work_dir: Path, uid_block: int):
        self.config = config
        self.work_dir = work_dir
        self.isolated = use_os_isolation(config.security)
        blocker = untraversable_ancestor(work_dir.resolve()) if self.isolated else None
        if blocker is not None:
            raise ValueError(f"sandbox work_dir {work_dir} is unreachable for the kernels' uids: {blocker} "
                             "is not world-traversable (o+x); choose another work_dir")
        self._uid_block = uid_block
        self._serial = itertools.count()
        self.mpl_config_dir = work_dir / "matplotlib"
        self._prepare_font_cache()

    def _prepare_font_cache(self) -> None:
        """Build matplotlib's font cache once, readable by all kernels (which cannot write it)."""
        self.mpl_config_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True,
                       env={**os.environ, "MPLCONFIGDIR": str(self.mpl_config_dir)}, capture_output=True)
        for path in [self.mpl_config_dir, *self.mpl_config_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

    def _uid(self, serial: int) -> int | None:
        if not self.isolated:
            return None
        return self.config.security.kernel_uid_base + self._uid_block * 1000 + serial % 1000

    def create(self) -> SandboxKernel:
        serial = next(self._serial)
        layout = KernelLayout(self.work_dir / "kernels" / f"kernel-{serial}")
        security = self.config.security
        settings = {
            "preload_modules": list(self.config.preload_modules),
            "audit_guards": security.audit_guards,
            "max_snapshot_bytes": int(self.config.max_snapshot_mb * 1024 * 1024),
            "read_roots": [sys.prefix, sys.base_prefix, *site.getsitepackages(), str(layout.root),
                           str(self.mpl_config_dir), *security.read_allowlist],
            "write_roots": [str(layout.workdir), str(layout.home)],
            "import_allowlist": list(security.import_allowlist),
            "snapshot_file": str(layout.snapshot_file) if self.config.snapshot_after_call else None,
        }
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(layout.home),
            "IPYTHONDIR": str(layout.home / ".ipython"),
            "TMPDIR": str(layout.tmp),
            "MPLCONFIGDIR": str(self.mpl_config_dir),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONNOUSERSITE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            # ipykernel exits when this process does (even on SIGKILL), so no kernel outlives us.
            "JPY_PARENT_PID": str(os.getpid()),
            **{name: "1" for name in _KERNEL_THREAD_ENV},
        }
        return SandboxKernel(layout, self._uid(serial), security, self.isolated, settings, env).start()


class KernelPool:
    """Keeps ``size`` started kernels ready; ``take`` never waits for the refill thread."""

    def __init__(self, factory: KernelFactory, size: int):
        self.factory = factory
        self.size = size
        self._ready: deque[SandboxKernel] = deque()
        self._wake = threading.Condition()
        self._stopped = False
        self.filled_once = threading.Event()
        self._thread = threading.Thread(target=self._refill, name="kernel-pool", daemon=True)

    def start(self) -> KernelPool:
        if self.size == 0:
            self.filled_once.set()
        self._thread.start()
        return self

    @property
    def warm(self) -> int:
        return len(self._ready)

    def take(self) -> SandboxKernel:
        with self._wake:
            while self._ready:
                kernel = self._ready.popleft()
                self._wake.notify()
                if kernel.alive():
                    return kernel
                kernel.shutdown()
        logger.info("kernel pool empty: starting a kernel on demand")
        return self.factory.create()

    def _refill(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and len(self._ready) >= self.size:
                    self.filled_once.set()
                    self._wake.wait()
                if self._stopped:
                    return
            try:
                kernel = self.factory.create()
            except Exception:
                logger.exception("could not start a pool kernel")
                with self._wake:
                    self._wake.wait(timeout=5.0)
                continue
            with self._wake:
                if self._stopped:
                    kernel.shutdown()
                    return
                self._ready.append(kernel)

    def close(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        self._thread.join(timeout=150)
        while self._ready:
            self._ready.popleft().shutdown()
