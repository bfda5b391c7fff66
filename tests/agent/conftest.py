"""A real tool manager (sandbox instance + Redis on loopback) shared by the agent tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.utils.processes import RedisServer


@pytest.fixture(scope="session")
def tool_manager(redis_server: RedisServer) -> Iterator[ToolManager]:
    config = ToolManagerConfig()
    config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
    config.sandbox.pool_size = 4
    with ToolManager(config=config) as manager:
        yield manager
