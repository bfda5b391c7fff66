"""Fixtures for the RL tests: sample RL data, a tool config pointing at it, a live reward server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from deepeyes.config import to_dict
from deepeyes.paths import REPO_ROOT, SAMPLE_DIR
from deepeyes.rl.config import RLConfig
from deepeyes.rl.services import reward_server
from deepeyes.tool_manager import ToolManagerConfig


@pytest.fixture(scope="session")
def rl_sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample data setup.sh made, or a small fresh one from the same generator."""
    if (SAMPLE_DIR / "rl" / "train.parquet").is_file() and (SAMPLE_DIR / "search" / "corpus.jsonl").is_file():
        return SAMPLE_DIR
    out = tmp_path_factory.mktemp("rl-sample")
    argv = [sys.executable, "-m", "deepeyes.data.synth", "--out", str(out), "--seed", "0", "--sft", "4", "--rl-train", "16",
            "--rl-val", "4", "--eval-visual", "4", "--eval-search", "4", "--distractor-entities", "10", "--quiet"]
    subprocess.run(argv, check=True, cwd=REPO_ROOT, timeout=600)
    return out


@pytest.fixture(scope="session")
def tool_config_file(rl_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tool_manager_config.yaml`` whose search tools read the sample data (sandbox and Redis started on demand)."""
    config = ToolManagerConfig()
    config.search.text.local.corpus_path = str(rl_sample_dir / "search" / "corpus.jsonl")
    config.search.image.cache_json = str(rl_sample_dir / "image_search" / "cache.json")
    config.search.image.queries_jsonl = str(rl_sample_dir / "image_search" / "queries.jsonl")
    config.search.image.query_image_root = str(rl_sample_dir)
    config.sandbox.pool_size = 1
    directory = tmp_path_factory.mktemp("tool-config")
    config.search.image.index_dir = str(directory / "similarity_index")
    config.search.cache.sqlite_path = str(directory / "text_search_cache.sqlite")
    path = directory / "tool_manager_config.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def reward_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real reward-server process on a free loopback port, started the way train.py starts it."""
    with reward_server(RLConfig(), tmp_path_factory.mktemp("reward-logs")) as url:
        yield url
