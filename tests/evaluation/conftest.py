"""Fixtures for the evaluation tests: tiny benchmark TSVs written on the fly, a real code tool."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from PIL import Image

from deepeyes.tool_manager import ToolManager, ToolManagerConfig

TsvWriter = Callable[..., Path]


def png_base64(colour: str = "red", size: tuple[int, int] = (56, 56)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.fixture()
def png() -> Callable[..., str]:
    """``png(colour, size)``: a base64 PNG, as TSV image cells hold them."""
    return png_base64


@pytest.fixture()
def make_tsv(tmp_path: Path) -> TsvWriter:
    """``make_tsv(name, rows, columns=None)`` writes ``tmp_path/lmu/<name>.tsv`` and returns its path.

    Rows missing an ``image`` get a small PNG, so tests only spell what they are about.
    """

    def write(name: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
        folder = tmp_path / "lmu"
        folder.mkdir(exist_ok=True)
        filled = [{"image": png_base64(), **row} for row in rows]
        frame = pd.DataFrame(filled, columns=columns or list(dict.fromkeys(k for row in filled for k in row)))
        path = folder / f"{name}.tsv"
        frame.to_csv(path, sep="\t", index=False)
        return path

    return write


@pytest.fixture(scope="session")
def code_tool_manager(tool_config: Callable[..., ToolManagerConfig]) -> Iterator[ToolManager]:
    """A real tool manager with only the code sandbox enabled (search calls get 'disabled')."""
    config = tool_config(["code"])
    config.sandbox.default_timeout_s = 120.0  # generous: the golden counts must not depend on machine load
    with ToolManager(config=config) as manager:
        yield manager
