"""Each rule of the security policy is denied with a readable message; the session survives."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig, SandboxSecurityConfig
from deepeyes.sandbox.isolation import namespaces_available
from deepeyes.sandbox.kernel import KernelDied, SandboxKernel
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.sandbox.pool import KernelFactory
from deepeyes.utils.processes import RedisServer


@pytest.fixture(scope="module")
def policy_session(sandbox_cluster: SandboxCluster) -> Iterator[tuple[SandboxClient, str]]:
    """One session for all policy checks: each check also proves the session survives a denial."""
    with sandbox_cluster.client() as client:
        client.execute("policy-checks", "alive = True")
        yield client, "policy-checks"
        client.close_session("policy-checks")


needs_namespaces = pytest.mark.skipif(
    not namespaces_available(), reason="OS isolation needs root and `unshare --net` (the sandbox then runs on audit hooks only)"
)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import subprocess", "importing 'subprocess' is not allowed"),
        ("import socket", "importing 'socket' is not allowed"),
        ("import ctypes", "importing 'ctypes' is not allowed"),
        ("import os\nos.system('id')", "running shell commands is not allowed"),
        ("import os\nos.fork()", "fork is not allowed"),
        ("import os\nos.execv('/bin/sh', ['sh'])", "exec of another program is not allowed"),
        ("import os\nos.posix_spawn('/bin/true', ['true'], {})", "spawning processes is not allowed"),
        ("open('/etc/passwd').read()", "reading '/etc/passwd' is not allowed"),
        ("open('/tmp/escape.txt', 'w')", "writing '/tmp/escape.txt' is not allowed"),
        ("import os\nos.remove('/etc/hostname')", "writing '/etc/hostname' is not allowed"),
        ("import os\nos.listdir('/root')", "reading '/root' is not allowed"),
    ],
)
def test_policy_denials_are_readable_and_the_session_survives(policy_session: tuple[SandboxClient, str],
                                                               code: str, message: str) -> None:
    client, session_id = policy_session
    result = client.execute(session_id, code)
    assert result.status == "denied", (result.status, result.stderr)
    assert f"sandbox policy: {message}" in result.stderr
    assert client.execute(session_id, "alive").result == "True"


def test_network_is_denied_even_through_an_already_imported_socket_module(policy_session: tuple[SandboxClient, str]) -> None:
    client, session_id = policy_session
    code = "import os\nsocket = os.sys.modules['socket']\nsocket.create_connection(('127.0.0.1', 6379), timeout=1)"
    result = client.execute(session_id, code)
    assert result.status == "denied"
    assert "network access is not allowed" in result.stderr


def test_files_inside_the_session_directory_are_allowed(client: SandboxClient, session_id: str) -> None:
    code = "import os, json\nwith open('notes.json', 'w') as f:\n    json.dump({'a': 1}, f)\nprint(open('notes.json').read(), os.listdir('.'))"
    result = client.execute(session_id, code)
    assert result.status == "success", result.stderr
    assert result.stdout == "{\"a\": 1} ['notes.json']\n"


def test_allowed_libraries_import(policy_session: tuple[SandboxClient, str]) -> None:
    client, session_id = policy_session
    result = client.execute(session_id, "import numpy, pandas, scipy.ndimage, sympy, cv2, math, re, json, collections, itertools, statistics\nprint('ok')")
    assert result.stdout == "ok\n", result.stderr


def test_memory_limit_raises_memory_error(policy_session: tuple[SandboxClient, str]) -> None:
    client, session_id = policy_session
    result = client.execute(session_id, "block = bytearray(8 * 1024 ** 3)")  # the default limit is 4 GiB
    assert result.status == "error"
    assert "MemoryError" in result.stderr
    assert client.execute(session_id, "1 + 1").result == "2"


@needs_namespaces
def test_kernel_runs_unprivileged_without_environment_secrets(policy_session: tuple[SandboxClient, str]) -> None:
    client, session_id = policy_session
    result = client.execute(session_id, "import os\n(os.getuid() != 0, 'REDIS' in str(os.environ), sorted(os.environ)[:3])")
    assert result.result.startswith("(True, False")


# --------------------------------------------------------------------------- OS boundaries without the audit hooks
@pytest.fixture()
def kernel_work_dir() -> Iterator[Path]:
    """A work dir kernel uids can traverse (pytest's own tmp dirs are private to root)."""
    with tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-test-") as name:
        Path(name).chmod(0o711)
        yield Path(name)


@pytest.fixture(scope="module")
def unguarded_kernel() -> Iterator[SandboxKernel]:
    """A kernel with the in-kernel guards off, to check what the OS alone enforces."""
    config = SandboxConfig(security=SandboxSecurityConfig(audit_guards=False))
    with tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-test-") as name:
        Path(name).chmod(0o711)
        factory = KernelFactory(config, Path(name))
        kernel = factory.create()
        yield kernel
        kernel.shutdown()
        factory.close()


def _run(kernel: SandboxKernel, code: str) -> str:
    out = kernel.execute(code, timeout=20)
    return out.stdout.value() + out.stderr.value()


@needs_namespaces
def test_os_network_namespace_blocks_redis(unguarded_kernel: SandboxKernel, redis_server: RedisServer) -> None:
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {redis_server.port}), timeout=2)\n"
            "    print('connected')\nexcept OSError as exc:\n    print('blocked', exc.errno)")
    assert _run(unguarded_kernel, code).startswith("blocked")


@needs_namespaces
def test_os_uid_blocks_writing_the_repository(unguarded_kernel: SandboxKernel) -> None:
    target = Path(__file__)
    code = f"try:\n    open({str(target)!r}, 'a')\n    print('written')\nexcept PermissionError:\n    print('denied')"
    assert _run(unguarded_kernel, code).strip() == "denied"


@needs_namespaces
def test_os_cpu_limit_kills_a_spinning_kernel(kernel_work_dir: Path) -> None:
    # The limit is cumulative CPU seconds of the kernel since its fork.
    # As process 1 of its PID namespace the kernel takes SIGXCPU only through its handler (template.py).
    config = SandboxConfig(preload_modules=[], security=SandboxSecurityConfig(audit_guards=False, cpu_time_limit_s=2))
    factory = KernelFactory(config, kernel_work_dir)
    kernel = factory.create()
    try:
        with pytest.raises(KernelDied):
            kernel.execute("while True:\n    pass", timeout=120)  # 2 s of CPU can take a minute on a loaded machine
    finally:
        kernel.shutdown()
        factory.close()
