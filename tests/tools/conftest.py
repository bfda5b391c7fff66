"""A tool manager with only the service-free zoom tool: fast, but every other tool really refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.utils.processes import RedisServer


@pytest.fixture(scope="session")
def zoom_manager(redis_server: RedisServer) -> Iterator[ToolManager]:
    config = ToolManagerConfig()
    config.tools.enabled = ["image_zoom_in_tool"]
    config.tools.max_calls_per_session = 2
    config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
    with ToolManager(config=config) as manager:
        yield manager


@pytest.fixture(scope="module")
def tool_manager_with_model(redis_server: RedisServer, tiny_model_dir):
    """A code-only tool manager and the tiny model's HFPolicy (max_pixels from the model's processor)."""
    from deepeyes.policies.hf import HFPolicy

    policy = HFPolicy(tiny_model_dir, max_new_tokens=4)
    config = ToolManagerConfig()
    config.tools.enabled = ["code"]
    config.tools.max_image_pixels = policy.max_pixels
    config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
    config.sandbox.pool_size = 1
    with ToolManager(config=config) as manager:
        yield manager, policy
