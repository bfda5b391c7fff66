"""Per-test SFT inputs on disk (see :mod:`sft_fixtures` for the builders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sft_fixtures import seed_records, write_fixture_images


@pytest.fixture()
def data_root(tmp_path: Path) -> Path:
    """A directory with the images the fixture records refer to."""
    root = tmp_path / "data"
    write_fixture_images(root)
    return root


@pytest.fixture()
def seed_file(data_root: Path) -> Path:
    path = data_root / "seed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in seed_records()))
    return path
