"""Many sessions at once over two instances: no errors and no cross-talk."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.server import make_redis_client


def test_sixteen_concurrent_sessions_keep_their_own_state(client: SandboxClient) -> None:
    sessions = [f"conc-{index}-{uuid.uuid4().hex[:8]}" for index in range(16)]

    def run(index: int) -> list[str]:
        sid = sessions[index]
        outputs = [client.execute(sid, f"mine = {index}\nhistory = [mine]").status]
        for step in range(3):
            result = client.execute(sid, f"history.append(mine * 100 + {step})\nhistory")
            outputs.append(result.result if result.ok else f"{result.status}: {result.stderr}")
        return outputs

    try:
        with ThreadPoolExecutor(max_workers=16) as executor:
            results = list(executor.map(run, range(16)))
    finally:
        for sid in sessions:
            client.close_session(sid)
    for index, outputs in enumerate(results):
        assert outputs[0] == "success"
        assert outputs[-1] == str([index, index * 100, index * 100 + 1, index * 100 + 2])
    used = {client.instances_for(sid)[0] for sid in sessions}
    assert len(used) == 2  # the sessions were spread over both instances


def test_more_request_workers_than_redis_connections_wait_instead_of_failing(
        make_sandbox_config: Callable[..., SandboxConfig]) -> None:
    """redis-py's default pool raises "Too many connections" past 100; a burst has more workers."""
    client = make_redis_client(make_sandbox_config())
    holders = 150
    everyone_asked = threading.Barrier(holders)

    def use_redis(_: int) -> bool:
        everyone_asked.wait()
        connection = client.connection_pool.get_connection()
        try:
            time.sleep(0.05)  # all of them want a connection at the same time
            connection.send_command("PING")
            return connection.read_response() in (b"PONG", "PONG")
        finally:
            client.connection_pool.release(connection)

    try:
        with ThreadPoolExecutor(max_workers=holders) as executor:
            assert all(executor.map(use_redis, range(holders)))
    finally:
        client.close()
