"""Issue 30's Redis faults against real components: a restarted Redis (empty, or with its AOF),
an unreachable one, a frozen one, and a SIGTERM while it is down. Also the bearer token and
session ids kept out of the server's log, checked on the same two instances.

The live kernel is the session's truth: nothing a session had may be lost by any of these,
calls whose code ran report their result, and the client never moves a session away from an
instance that answers.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from deepeyes.sandbox.client import SandboxClient, SandboxUnavailableError
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.sandbox.server import TOKEN_ENV
from deepeyes.utils.processes import (
    ManagedProcess,
    free_port,
    port_is_open,
    redis_server_binary,
    wait_until,
)

pytestmark = pytest.mark.redis
TOKEN = "test-token-30"
KERNEL_PID = "__deepeyes__.status().payload['pid']"


class RestartableRedis:
    """A redis-server on a fixed port that the test stops, freezes and starts again, with its
    data (``--appendonly yes``, the same directory) or empty (a fresh directory, no persistence)."""

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self.root = Path(tempfile.mkdtemp(prefix="deepeyes-test-redis-"))
        self.process: ManagedProcess | None = None
        self.generation = 0
        self.start(keep_data=False)

    def start(self, keep_data: bool) -> None:
        if not keep_data:
            self.generation += 1
        data = self.root / f"data-{self.generation}"
        data.mkdir(exist_ok=True)
        argv = [redis_server_binary(), "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data), "--protected-mode", "no"]
        self.process = ManagedProcess(argv, name=f"redis-server:{self.port}", log_path=self.root / "redis.log")
        wait_until(lambda: port_is_open(self.host, self.port), 15, "redis-server", self.process.process)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()  # SIGTERM: with AOF, everything written is on disk
            self.process = None

    def restart(self, keep_data: bool) -> None:
        self.stop()
        self.start(keep_data)

    def freeze(self, frozen: bool) -> None:
        assert self.process is not None
        os.kill(self.process.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fault_cluster(own_redis: RestartableRedis, make_sandbox_config: Callable[..., SandboxConfig],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    """Two instances on the restartable Redis, serving with a bearer token."""
    config = make_sandbox_config(pool_size=1, redis_port=own_redis.port)
    previous = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = TOKEN  # the servers inherit it; clients read it
    try:
        with SandboxCluster(config, num_instances=2, log_dir=tmp_path_factory.mktemp("fault-logs")) as cluster:
            yield cluster
    finally:
        if previous is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = previous


@pytest.fixture()
def fault_client(fault_cluster: SandboxCluster, own_redis: RestartableRedis) -> Iterator[SandboxClient]:
    with fault_cluster.client(store_retry_s=2.0) as client:
        yield client
    if own_redis.process is None:
        own_redis.start(keep_data=False)


def _health(cluster: SandboxCluster, index: int) -> dict:
    return requests.get(f"http://127.0.0.1:{cluster.ports[index]}/health", timeout=5).json()


def _owner_index(cluster: SandboxCluster, client: SandboxClient, session_id: str) -> int:
    return cluster.ports.index(int(client.instances_for(session_id)[0].rsplit(":", 1)[1]))


def _wait_resaved(cluster: SandboxCluster, index: int, losses_before: int | None = None) -> None:
    def done() -> bool:
        health = _health(cluster, index)
        lost = losses_before is None or health["store_losses"] > losses_before
        return health["store"] == "ok" and health["unsaved"] == 0 and lost
    wait_until(done, 20, "the live sessions re-snapshotted")


@pytest.mark.parametrize("keep_data", [False, True], ids=["comes-back-empty", "comes-back-with-aof"])
def test_a_redis_restart_loses_no_session_state(fault_cluster: SandboxCluster, fault_client: SandboxClient,
                                                own_redis: RestartableRedis, keep_data: bool) -> None:
    """Issue 30, item 1: ``(x, 'arr' in dir(), 'hist' in dir())`` came back ``(3, False, False)``."""
    sid = f"restart-{'aof' if keep_data else 'empty'}"
    fault_client.open_session(sid)
    fault_client.execute(sid, "import numpy as np\nx = 1\narr = np.arange(4)\nhist = {'a': 1}")
    fault_client.execute(sid, "x = 3")
    owner = _owner_index(fault_cluster, fault_client, sid)
    losses = _health(fault_cluster, owner)["store_losses"]
    own_redis.restart(keep_data=keep_data)
    _wait_resaved(fault_cluster, owner, losses)
    assert fault_client.execute(sid, "y = 4").status == "success"  # a later change, saved as a delta
    os.kill(int(fault_client.execute(sid, KERNEL_PID).result), signal.SIGKILL)  # lose the kernel
    restored = fault_client.execute(sid, "(x, 'arr' in dir(), 'hist' in dir(), y)")
    assert restored.status == "success", restored.stderr
    assert restored.result == "(3, True, True, 4)"
    assert any("restored from its last snapshot" in note for note in restored.notes)
    fault_client.close_session(sid)


def test_calls_during_an_outage_report_their_result_and_stay_on_their_instance(
        fault_cluster: SandboxCluster, fault_client: SandboxClient, own_redis: RestartableRedis) -> None:
    """Issue 30, item 2: ten calls ran (8 -> 18) but answered HTTP 500, and the sessions moved."""
    sid = "outage-counter"
    fault_client.open_session(sid)
    fault_client.execute(sid, "counter = 8")
    owner = _owner_index(fault_cluster, fault_client, sid)
    own_redis.stop()
    results = [fault_client.execute(sid, "counter += 1\ncounter") for _ in range(10)]
    assert [r.status for r in results] == ["success"] * 10, [r.stderr for r in results]
    assert [r.result for r in results] == [str(n) for n in range(9, 19)]
    assert all(any("not saved: Redis is unreachable" in n for n in r.notes) for r in results)
    assert not any("session continued on" in n for r in results for n in r.notes)  # never moved
    assert _owner_index(fault_cluster, fault_client, sid) == owner
    health = _health(fault_cluster, owner)
    assert health["store"] == "unavailable" and health["unsaved"] >= 1
    # A session that is not live anywhere needs Redis: 503 with Retry-After, not 500.
    response = requests.post(f"http://127.0.0.1:{fault_cluster.ports[owner]}/sessions/open",
                             json={"session_id": "outage-new"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "store_unavailable"
    with pytest.raises(SandboxUnavailableError):
        fault_client.open_session("outage-new")
    own_redis.start(keep_data=False)  # and it comes back empty
    _wait_resaved(fault_cluster, owner)
    os.kill(int(fault_client.execute(sid, KERNEL_PID).result), signal.SIGKILL)
    assert fault_client.execute(sid, "counter").result == "18"
    fault_client.close_session(sid)


def test_a_frozen_redis_does_not_freeze_the_instance(fault_cluster: SandboxCluster, own_redis: RestartableRedis) -> None:
    """Issue 30, item 3: six concurrent opens held /health for 24.8 s."""
    url = f"http://127.0.0.1:{fault_cluster.ports[0]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    own_redis.freeze(True)
    try:
        with ThreadPoolExecutor(max_workers=6) as executor:
            opens = [executor.submit(requests.post, f"{url}/sessions/open", json={"session_id": f"frozen-{i}"},
                                     headers=headers, timeout=60) for i in range(6)]
            time.sleep(0.5)
            started = time.monotonic()
            assert requests.get(f"{url}/health", timeout=5).status_code == 200
            health_s = time.monotonic() - started
            codes = [future.result().status_code for future in opens]
    finally:
        own_redis.freeze(False)
    assert health_s < 2.0, health_s
    assert set(codes) <= {200, 503}, codes
    wait_until(lambda: _health(fault_cluster, 0)["store"] == "ok", 30, "Redis answering again")


def test_images_of_a_session_never_called_expire_with_the_idle_timeout(
        fault_cluster: SandboxCluster, fault_client: SandboxClient, own_redis: RestartableRedis) -> None:
    """Issue 30, item 11: they stayed 24 h after the session's eviction."""
    fault_client.open_session("never-called", [Image.new("RGB", (16, 16), "blue")])
    client = redis.Redis(host=own_redis.host, port=own_redis.port)
    try:
        ttl_ms = client.pttl("deepeyes:sandbox:never-called:images")
    finally:
        client.close()
    assert 0 < ttl_ms <= fault_cluster.config.session_ttl_s * 1000
    fault_client.close_session("never-called")


def test_requests_need_the_bearer_token_and_logs_name_no_session(fault_cluster: SandboxCluster) -> None:
    url = f"http://127.0.0.1:{fault_cluster.ports[0]}"
    body = {"session_id": "secret-session-id-30", "code": "1 + 1"}
    assert requests.post(f"{url}/jupyter_sandbox", json=body, timeout=10).status_code == 401
    wrong = requests.post(f"{url}/jupyter_sandbox", json=body, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    right = requests.post(f"{url}/jupyter_sandbox", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert right.status_code == 200 and right.json()["output"]["result"] == "2"
    assert requests.get(f"{url}/health", timeout=5).status_code == 200  # liveness probes need no token
    logs = "".join(path.read_text() for path in fault_cluster.servers[0].log_path.parent.glob("sandbox-*.log"))
    assert "POST /jupyter_sandbox 200 session=#" in logs
    for session_id in ("secret-session-id-30", "restart-empty", "outage-counter", "never-called"):
        assert session_id not in logs


def test_a_non_loopback_bind_without_a_token_is_refused(own_redis: RestartableRedis) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run([sys.executable, "-m", "deepeyes.sandbox.server", "--port", str(free_port()), "--host", "0.0.0.0",
                           "--redis_port", str(own_redis.port)], check=False, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert f"needs a bearer token: set ${TOKEN_ENV}" in done.stderr


def test_sigterm_while_redis_is_down_exits_cleanly(fault_cluster: SandboxCluster, fault_client: SandboxClient,
                                                   own_redis: RestartableRedis) -> None:
    """Issue 30, item 11: a traceback, and the work folder left behind. (Runs last: it stops an instance.)"""
    sid = "sigterm-session"
    fault_client.execute(sid, "kept = 1")
    index = _owner_index(fault_cluster, fault_client, sid)
    server, port = fault_cluster.servers[index], fault_cluster.ports[index]
    work_dir = fault_cluster.config.work_dir / f"instance-{port}"
    assert work_dir.is_dir()
    own_redis.stop()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log
    assert "Redis unreachable at shutdown" in log
    assert not work_dir.exists()
