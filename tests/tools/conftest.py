"""Tool managers on the session's Redis: the service-free zoom (and frame) tools, fast, with every other tool really refused; and the code tool on the session's sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


@pytest.fixture(scope="session")
def frames_manager(redis_server: RedisServer) -> Iterator[ToolManager]:
    """The two service-free frame tools, ``select_frames`` and the zoom; every other tool refused."""
    config = ToolManagerConfig()
    config.tools.enabled = ["select_frames", "image_zoom_in_tool"]
    config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
    with ToolManager(config=config) as manager:
        yield manager


@pytest.fixture(scope="session")
def code_manager(tool_config: Callable[..., ToolManagerConfig]) -> Iterator[ToolManager]:
    """Code (the session's sandbox instance) and zoom; search tools refused."""
    with ToolManager(config=tool_config(["code", "image_zoom_in_tool"])) as manager:
        yield manager


@pytest.fixture()
def tool_manager_with_model(code_manager: ToolManager, tiny_model_dir):
    """The code manager, its image limit set to the tiny model's ``max_pixels``, and that model's HFPolicy."""
    from deepeyes.policies.hf import HFPolicy

    policy = HFPolicy(tiny_model_dir, max_new_tokens=4)
    saved, code_manager.config.tools.max_image_pixels = code_manager.config.tools.max_image_pixels, policy.max_pixels
    try:
        yield code_manager, policy
    finally:
        code_manager.config.tools.max_image_pixels = saved
