"""A real tool manager (sandbox instance + Redis on loopback) shared by the agent tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from deepeyes.tool_manager import ToolManager, ToolManagerConfig


@pytest.fixture(scope="session")
def tool_manager(tool_config: Callable[..., ToolManagerConfig]) -> Iterator[ToolManager]:
    """Every tool, on the session's sandbox instance and Redis."""
    with ToolManager(config=tool_config()) as manager:
        yield manager
