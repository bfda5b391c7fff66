"""Losing a whole instance: the client moves the session to another one, restored from Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from PIL import Image

from deepeyes.sandbox.client import SandboxClient, SandboxUnavailableError
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.utils.processes import free_port, wait_until


@pytest.fixture()
def doomed_cluster(make_sandbox_config: Callable[..., SandboxConfig]) -> Iterator[SandboxCluster]:
    """Its own two instances, since the test kills one."""
    with SandboxCluster(make_sandbox_config(pool_size=1), num_instances=2) as cluster:
        yield cluster


def test_instance_loss_fails_over_with_state(doomed_cluster: SandboxCluster, sandbox_redis: redis.Redis) -> None:
    client = doomed_cluster.client()
    sid = "failover-session"
    client.open_session(sid, [Image.new("RGB", (8, 6), "white")])
    setup = client.execute(sid, "acc = [1, 2]\ndef bump(v):\n    return v + 1\n__deepeyes__.status().payload['pid']")
    kernel_pid = int(setup.result)
    primary = client.instances_for(sid)[0]
    port = int(primary.rsplit(":", 1)[1])
    assert sandbox_redis.get(f"deepeyes:sandbox:{sid}:owner") == f"127.0.0.1:{port}".encode()

    doomed_cluster.servers[doomed_cluster.ports.index(port)].kill()
    result = client.execute(sid, "acc.append(bump(2))\n(acc, image_1.size)")

    assert result.status == "success", result.stderr
    assert result.result == "([1, 2, 3], (8, 6))"
    assert any(note.startswith(f"sandbox instance {primary} (") and "session continued on" in note for note in result.notes)
    assert any("restored from its last snapshot" in note for note in result.notes)
    survivor = next(p for p in doomed_cluster.ports if p != port)
    assert sandbox_redis.get(f"deepeyes:sandbox:{sid}:owner") == f"127.0.0.1:{survivor}".encode()
    # The lost instance's kernel notices its parent is gone and exits (no orphans).
    wait_until(lambda: not Path(f"/proc/{kernel_pid}").exists(), 15, "orphaned kernel exit")
    assert client.execute(sid, "acc").result == "[1, 2, 3]"
    client.close_session(sid)
    client.close()


def test_no_reachable_instance_raises_a_clear_error() -> None:
    with SandboxClient([free_port(), free_port()]) as client, pytest.raises(SandboxUnavailableError,
                                                                             match="no sandbox instance reachable"):
        client.execute("nobody-home", "1 + 1")
