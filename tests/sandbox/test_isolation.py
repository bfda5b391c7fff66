"""The isolation contract (docs/sandbox.md): a new session sees nothing of an earlier one.

Each item is changed by session A, A is closed, and session B, opened afterwards on the same
instance, must find the pristine state. Kernels are never reused (each is a fresh fork of the
template process), so B also runs in another process than A.
"""

from __future__ import annotations

import ast
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig, SandboxSecurityConfig
from deepeyes.sandbox.isolation import namespaces_available
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.sandbox.pool import KernelFactory
from deepeyes.utils.processes import wait_until

EARLIER_SESSION = """
import os, json, io
import numpy as np
import matplotlib.pyplot as plt
secret_value = 'from session A'
json.dumps = lambda *args, **kwargs: 'patched'          # monkey-patch of a stdlib module
np.pi = 3                                                  # module state of a preloaded library
os.environ['LEAKED_VARIABLE'] = 'yes'
with open('left_behind.txt', 'w') as handle:
    handle.write('A')
kept_open = open('kept_open.txt', 'w')
plt.rcParams['lines.linewidth'] = 7.0
plt.figure()
plt.plot([1, 2])
os.sys.modules['injected_module'] = type(os)('injected_module')
(__deepeyes__.status().payload['pid'], kept_open.fileno(), os.fstat(kept_open.fileno()).st_ino)
"""

LATER_SESSION = """
import os, json
import numpy as np
import matplotlib.pyplot as plt
def _fd_inode(fd):
    try:
        return os.fstat(fd).st_ino
    except OSError:
        return None
{
    'variable': 'secret_value' in globals(),
    'monkey_patch': json.dumps([1]),
    'module_state': np.pi,
    'environment': 'LEAKED_VARIABLE' in os.environ,
    'files': sorted(os.listdir('.')),
    'handle_inode': _fd_inode(%d),
    'rcparams': float(plt.rcParams['lines.linewidth']),
    'figures': plt.get_fignums(),
    'sys_modules': 'injected_module' in os.sys.modules,
    'pid': __deepeyes__.status().payload['pid'],  # the host's pid (os.getpid() is 1 in its PID namespace)
}
"""


@pytest.fixture()
def pinned_client(sandbox_cluster: SandboxCluster) -> Iterator[SandboxClient]:
    """A client that sends every session to the same instance."""
    with SandboxClient([sandbox_cluster.ports[0]]) as client:
        yield client


def test_a_new_session_sees_nothing_of_an_earlier_one(pinned_client: SandboxClient) -> None:
    earlier, later = f"iso-a-{uuid.uuid4().hex[:8]}", f"iso-b-{uuid.uuid4().hex[:8]}"
    pinned_client.open_session(earlier)
    setup = pinned_client.execute(earlier, EARLIER_SESSION)
    assert setup.status == "success", setup.stderr
    earlier_pid, fd, inode = ast.literal_eval(setup.result)
    pinned_client.close_session(earlier)

    pinned_client.open_session(later)
    try:
        result = pinned_client.execute(later, LATER_SESSION % fd)
        assert result.status == "success", result.stderr
        seen = ast.literal_eval(result.result)
    finally:
        pinned_client.close_session(later)
    assert seen["variable"] is False
    assert seen["monkey_patch"] == "[1]"
    assert seen["module_state"] == pytest.approx(3.141592653589793)
    assert seen["environment"] is False
    assert seen["files"] == []
    assert seen["handle_inode"] != inode
    assert seen["rcparams"] == 1.5
    assert seen["figures"] == []
    assert seen["sys_modules"] is False
    assert seen["pid"] != earlier_pid
    # The earlier kernel is gone (killed and reaped), not reset and reused.
    wait_until(lambda: not Path(f"/proc/{earlier_pid}").exists(), 5, "earlier kernel reaped")


def test_reopening_the_same_session_id_starts_from_nothing(pinned_client: SandboxClient) -> None:
    sid = f"iso-same-{uuid.uuid4().hex[:8]}"
    pinned_client.open_session(sid)
    pinned_client.execute(sid, "import os\nleft = 1\nopen('f.txt', 'w').close()")
    pinned_client.open_session(sid)
    try:
        result = pinned_client.execute(sid, "import os\n('left' in globals(), os.listdir('.'))")
    finally:
        pinned_client.close_session(sid)
    assert result.result == "(False, [])"


@pytest.mark.skipif(not namespaces_available(), reason="needs root and network namespaces")
def test_world_writable_directories_are_private_per_kernel_even_without_the_audit_hook() -> None:
    config = SandboxConfig(security=SandboxSecurityConfig(audit_guards=False))
    with tempfile.TemporaryDirectory(prefix="deepeyes-sandbox-test-") as name:
        Path(name).chmod(0o711)
        factory = KernelFactory(config, Path(name))
        try:
            first = factory.create()
            out = first.execute("for d in ('/tmp', '/dev/shm'):\n    open(d + '/from_first', 'w').write('x')\n"
                                "print(sorted(__import__('os').listdir('/tmp')))", timeout=20)
            assert "from_first" in out.stdout.value(), out.stderr.value()
            second = factory.create()
            check = second.execute("import os\nprint(os.path.exists('/tmp/from_first'), os.path.exists('/dev/shm/from_first'))",
                                   timeout=20)
            assert check.stdout.value().strip() == "False False", check.stderr.value()
            assert not Path("/tmp/from_first").exists()  # nor did it reach the host's /tmp
            first.shutdown()
            second.shutdown()
        finally:
            factory.close()
