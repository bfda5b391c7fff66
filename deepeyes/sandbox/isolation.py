"""OS boundaries around the kernels: network namespaces, own uids, resource limits.

Kernels are forks of one template process per instance (see ``template.py``). The template is
started through ``unshare --net --mount`` (an empty network namespace and a private mount
table, see below) and stays root; each forked kernel then, before any user code runs, enters
a network namespace of its own (only a down loopback: no route to Redis, the server, the
other kernels or anywhere else), sets its rlimits (address space, CPU seconds, processes, no
core files) and drops root for a uid of its own with ``no_new_privs``.

The Python interpreter may live under a directory the kernel's uid cannot traverse (e.g. a
pyenv build in ``/root``, mode 0700). Inside the template's mount namespace (shared by its
kernels) that directory is covered with an empty tmpfs and only the interpreter's prefix is
bound back, which also hides the rest of it from model-written code.

The kernel and the server talk over ZMQ ``ipc`` sockets (files in the kernel's private
directory), which do not depend on the network namespace.
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
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
    """(soft, hard) rlimits each kernel sets on itself, by ``template.py``'s names."""
    cpu = security.cpu_time_limit_s
    limits = {"as": (security.memory_limit_mb * 2**20,) * 2, "cpu": (cpu, cpu + 5), "core": (0, 0)}
    if isolated:  # RLIMIT_NPROC counts per uid, so it only makes sense with a uid of its own
        limits["nproc"] = (KERNEL_MAX_TASKS, KERNEL_MAX_TASKS)
    return limits
