"""The inference service really served on loopback (uvicorn in a thread) with real tools behind it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from serve_helpers import SCRIPT, Served, serve

from deepeyes.serve import ServeConfig
from deepeyes.tool_manager import ToolManager, ToolManagerConfig


@pytest.fixture(scope="session")
def serve_tools(tool_config: Callable[..., ToolManagerConfig]) -> Iterator[ToolManager]:
    """A real tool manager (the session's sandbox instance and Redis; local BM25 text search) shared by the service tests."""
    with ToolManager(config=tool_config(["code", "search"])) as manager:
        yield manager


@pytest.fixture(scope="session")
def script_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "script.json"
    path.write_text(json.dumps(SCRIPT), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def scripted(serve_tools: ToolManager, script_file: Path) -> Iterator[Served]:
    """The service replaying :data:`SCRIPT`, with the shared real tools."""
    with serve(ServeConfig(script_path=str(script_file), max_images=3), serve_tools) as served:
        yield served
