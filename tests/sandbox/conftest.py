"""Real sandbox servers (and real kernels) for the sandbox tests, always stopped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.utils.processes import RedisServer


def sandbox_config(redis_server: RedisServer, **overrides: object) -> SandboxConfig:
    """Small limits so the tests can reach them quickly."""
    settings: dict = {"pool_size": 2, "max_request_mb": 2.0, "max_output_chars": 2000, "interrupt_grace_s": 2.0,
                      "redis_host": redis_server.host, "redis_port": redis_server.port}
    settings.update(overrides)
    return SandboxConfig(**settings)


@pytest.fixture(scope="session")
def make_sandbox_config(redis_server: RedisServer) -> Callable[..., SandboxConfig]:
    """``sandbox_config`` bound to the session's Redis, for tests that start their own servers."""
    return lambda **overrides: sandbox_config(redis_server, **overrides)


@pytest.fixture(scope="session")
def sandbox_cluster(redis_server: RedisServer) -> Iterator[SandboxCluster]:
    """Two server instances sharing the session's Redis (the shape of a real deployment)."""
    with SandboxCluster(sandbox_config(redis_server), num_instances=2) as cluster:
        yield cluster


@pytest.fixture()
def client(sandbox_cluster: SandboxCluster) -> Iterator[SandboxClient]:
    with sandbox_cluster.client() as sandbox_client:
        yield sandbox_client


@pytest.fixture()
def session_id(client: SandboxClient) -> Iterator[str]:
    """A fresh session, closed after the test."""
    sid = f"test-{uuid.uuid4().hex[:12]}"
    yield sid
    client.close_session(sid)


@pytest.fixture()
def sandbox_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A Redis client that does not flush (the cluster's sessions live in the same database)."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    yield client
    client.close()
