"""Shared fixtures: real services on loopback, started per test session and always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from deepeyes.models.tiny import build as build_tiny_model
from deepeyes.paths import SAMPLE_DIR, TINY_MODEL_DIR
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.tool_manager import ToolManagerConfig
from deepeyes.utils.processes import RedisServer

#: Fixtures that start a piece of the machine, and the marker (pyproject.toml) their tests get.
MARKER_FIXTURES = {"redis_server": "redis", "browser": "browser"}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses one of :data:`MARKER_FIXTURES`, directly or through another
    fixture, so ``-m "not redis"`` / ``-m "not browser"`` deselect it without each test saying so.
    A test that starts Redis itself (a ``ToolManager`` with no Redis configured, a CLI that runs
    tools, an RL run) or runs VLMEvalKit carries ``@pytest.mark.redis`` / ``vlmeval`` by hand."""
    for item in items:
        closure = getattr(item, "fixturenames", ())
        for fixture, marker in MARKER_FIXTURES.items():
            if fixture in closure:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port, shared by the whole test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_ports(redis_server: RedisServer) -> Iterator[list[int]]:
    """One sandbox server instance on the session's Redis, shared by every tool manager the tests
    start: an instance's start (its template kernel, then its warm pool) took 10-45 s on a
    2-core machine, once per tool-manager fixture before. Sessions are per request, so tests do
    not see each other's kernels; the sandbox's own tests start their own instances."""
    config = SandboxConfig(redis_host=redis_server.host, redis_port=redis_server.port, pool_size=4)
    with SandboxCluster(config, num_instances=1) as cluster:
        yield list(cluster.ports)


@pytest.fixture(scope="session")
def tool_config(redis_server: RedisServer, sandbox_ports: list[int]) -> Callable[..., ToolManagerConfig]:
    """Builds a :class:`ToolManagerConfig` on the session's Redis and sandbox instance, with only
    ``enabled`` tools (None: every tool), so starting its tool manager starts no server."""

    def build(enabled: list[str] | None = None) -> ToolManagerConfig:
        config = ToolManagerConfig()
        if enabled is not None:
            config.tools.enabled = list(enabled)
        config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
        config.sandbox.ports = list(sandbox_ports)
        return config

    return build


@pytest.fixture()
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database, so tests never see each other's keys."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2.5-VL: the one setup.sh built, or a fresh build when it is absent."""
    if (TINY_MODEL_DIR / "model.safetensors").is_file():
        return TINY_MODEL_DIR
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default sample data: the set setup.sh generated, or a fresh generation when absent."""
    if (SAMPLE_DIR / "manifest.json").is_file():
        return SAMPLE_DIR
    from deepeyes.data.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("sample") / "sample"
    generate(SynthConfig(out=out), show_progress=False)
    return out
