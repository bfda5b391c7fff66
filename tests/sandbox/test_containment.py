"""Issue 30's containment faults below Python: processes that escape a session (``setsid``
through ``ctypes``), a session filling the disk, and kernels of different instances sharing
a uid. Real kernels, forked by a real template."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig, SandboxSecurityConfig
from deepeyes.sandbox.isolation import UidLeases, namespaces_available, processes_of_uid
from deepeyes.sandbox.kernel import SandboxKernel
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.sandbox.pool import KernelFactory
from deepeyes.utils.processes import wait_until

needs_namespaces = pytest.mark.skipif(not namespaces_available(), reason="needs root and namespaces")

#: Forks ``n`` children that each start a session of their own (escaping the kernel's process
#: group, as issue 30's 58 survivors did) and sleep; prints their host pids.
FORK_AND_SETSID = """
import os, time
pids = []
for _ in range({n}):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        time.sleep(600)
        os._exit(0)
    pids.append(pid)
print(len(pids))
"""


@pytest.fixture(scope="module")
def factory_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-test-") as name:
        Path(name).chmod(0o711)
        yield Path(name)


def _factory(work_dir: Path, **security: object) -> KernelFactory:
    config = SandboxConfig(preload_modules=["numpy"], security=SandboxSecurityConfig(**security))
    work_dir.mkdir(mode=0o711)
    return KernelFactory(config, work_dir)


def _session_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])


@needs_namespaces
def test_every_process_a_kernel_made_dies_with_it_even_after_setsid(factory_dir: Path) -> None:
    """Without the audit hook (as if ``ctypes`` had got through): 20 forked, setsid'd children."""
    factory = _factory(factory_dir / "setsid", audit_guards=False)
    try:
        kernel = factory.create()
        out = kernel.execute(FORK_AND_SETSID.format(n=20), timeout=60)
        assert out.stdout.value().strip() == "20", out.stderr.value()
        children = [pid for pid in processes_of_uid(kernel.uid) if pid != kernel.pid]
        assert len(children) == 20
        wait_until(lambda: all(_session_of(pid) != _session_of(kernel.pid) for pid in children), 30,
                   "every child in a session of its own")  # they escaped the kernel's process group
        kernel.shutdown()
        assert processes_of_uid(kernel.uid) == []  # gone by the time shutdown returns
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        factory.close()


@pytest.fixture(scope="module")
def guarded_session(sandbox_cluster: SandboxCluster) -> Iterator[tuple[SandboxClient, str]]:
    with sandbox_cluster.client() as client:
        client.execute("containment", "alive = True")
        yield client, "containment"
        client.close_session("containment")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        # numpy.ctypeslib hands out ctypes: issue 30's route to setsid()
        ("import numpy.ctypeslib as npc\nnpc.ctypes.CDLL(None).setsid()", "(ctypes.dlopen)"),
        ("import os\nos.sys.modules['ctypes'].pythonapi.Py_GetVersion()", "(ctypes.dlsym)"),
        ("import numpy.ctypeslib as npc\nnpc.ctypes.memmove(8, 16, 8)", "'ctypes.memmove' is not allowed"),
        ("import numpy.ctypeslib as npc\nnpc.ctypes.c_char.from_address(8)", "(ctypes.cdata)"),
        ("import os\nos.sys.modules['_posixsubprocess'].fork_exec()", "'_posixsubprocess.fork_exec' is not allowed"),
        (("import os\nimportlib = os.sys.modules['importlib']\ndel os.sys.modules['_posixsubprocess']\n"
         "importlib.import_module('_posixsubprocess')"), "importing '_posixsubprocess' is not allowed"),
    ],
)
def test_native_routes_past_the_guards_are_refused(guarded_session: tuple[SandboxClient, str], code: str,
                                                   message: str) -> None:
    client, session_id = guarded_session
    result = client.execute(session_id, code)
    assert result.status == "denied", (result.status, result.stderr)
    assert message in result.stderr
    assert client.execute(session_id, "alive").result == "True"


@needs_namespaces
def test_a_session_writing_past_its_quota_gets_an_error_not_a_full_disk(factory_dir: Path) -> None:
    factory = _factory(factory_dir / "quota", disk_quota_mb=8)
    try:
        kernel = factory.create()
        one_big = kernel.execute("try:\n    open('big.bin', 'wb').write(b'x' * (16 << 20))\nexcept OSError as exc:\n"
                                 "    print(type(exc).__name__, exc.errno)", timeout=60)
        # EFBIG (RLIMIT_FSIZE) or ENOSPC (the home tmpfs), whichever of the two 8 MB limits comes first
        assert one_big.stdout.value().split() in (["OSError", "27"], ["OSError", "28"]), one_big.stderr.value()
        many = kernel.execute("import os\nos.remove('big.bin')\nwritten = 0\ntry:\n    for i in range(20):\n"
                              "        with open(f'part{i}.bin', 'wb') as f:\n            f.write(b'x' * (1 << 20))\n"
                              "        written += 1\nexcept OSError as exc:\n    print(exc.errno, written)", timeout=60)
        errno, written = many.stdout.value().split()
        assert errno == "28" and int(written) < 8, many.stderr.value()  # ENOSPC: the home tmpfs is full
        assert kernel.execute("print('still here')", timeout=30).stdout.value() == "still here\n"
        assert kernel.take_snapshot() is not None  # a full quota does not stop the session's snapshots
        assert list(kernel.layout.workdir.iterdir()) == []  # nothing reached the real disk
        kernel.shutdown()
    finally:
        factory.close()


def test_uid_leases_are_unique_across_instances_and_sweep_leftovers(tmp_path: Path) -> None:
    base = 230000
    first, second = UidLeases(base, 3, tmp_path), UidLeases(base, 3, tmp_path)  # two instances, one host
    leases = [first.acquire(), second.acquire(), first.acquire()]
    assert len({lease.uid for lease in leases}) == 3
    with pytest.raises(RuntimeError, match="all 3 kernel uids"):
        second.acquire()
    freed = leases.pop(1)
    freed.release()
    if os.geteuid() == 0:  # a process left running under the freed uid (a crashed instance's kernel)
        stray = subprocess.Popen(["sleep", "600"], user=freed.uid, group=freed.uid, extra_groups=[])
        wait_until(lambda: stray.pid in processes_of_uid(freed.uid), 10, "the stray process")
    again = second.acquire()
    assert again.uid == freed.uid
    if os.geteuid() == 0:
        assert stray.wait(timeout=10) == -9  # killed before the uid was handed out
    for lease in [*leases, again]:
        lease.release()


@needs_namespaces
def test_kernels_of_two_instances_never_share_a_uid(factory_dir: Path) -> None:
    """Issue 30, item 8: uid = base + (port % 1000) * 1000 + serial collided for ports 1000 apart."""
    lock_dir = str(factory_dir / "uid-locks")
    factories = [_factory(factory_dir / f"instance-{port}", kernel_uid_base=240000, kernel_uid_count=8,
                          uid_lock_dir=lock_dir) for port in (8888, 9888)]
    kernels: list[SandboxKernel] = []
    try:
        kernels = [factory.launch() for factory in factories for _ in range(2)]
        uids = [kernel.uid for kernel in kernels]
        assert len(set(uids)) == 4 and all(240000 <= uid < 240008 for uid in uids)
    finally:
        for kernel in kernels:
            kernel.shutdown()
        for factory in factories:
            factory.close()
    fresh = UidLeases(240000, 8, lock_dir)
    everything = [fresh.acquire() for _ in range(8)]  # every lease came back with its kernel
    for lease in everything:
        lease.release()

