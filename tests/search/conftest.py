"""Fixtures for the search tests: sample data, small corpora and images, and a loopback
Flask stand-in that answers in the documented shapes of the supported web-search APIs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from search_fixtures import random_picture
from search_standin import StandIn, build_app
from werkzeug.serving import make_server

from deepeyes.paths import SAMPLE_DIR
from deepeyes.utils.processes import free_port

SAMPLE_FILES = ("search/corpus.jsonl", "search/questions.jsonl", "image_search/cache.json", "image_search/queries.jsonl")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/sample`` when setup has generated it, else a small sample made by the synth CLI."""
    if all((SAMPLE_DIR / name).is_file() for name in SAMPLE_FILES):
        return SAMPLE_DIR
    out = tmp_path_factory.mktemp("sample")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepeyes.data.synth",
            "--out",
            str(out),
            "--seed",
            "0",
            "--quiet",
            "--sft",
            "10",
            "--rl-train",
            "10",
            "--rl-val",
            "2",
            "--eval-visual",
            "2",
            "--eval-search",
            "6",
            "--distractor-entities",
            "20",
        ],
        check=True,
        timeout=600,
    )
    return out


@pytest.fixture()
def image_cache_dir(tmp_path: Path) -> Path:
    """A small MMSearch-R1 cache (6 entries, 3 results each) with query images, as the synth writes it."""
    root = tmp_path / "sample"
    (root / "images").mkdir(parents=True)
    (root / "image_search" / "images").mkdir(parents=True)
    cache, queries = {}, []
    for entry in range(6):
        key = f"sample-{entry:03d}"
        random_picture(1000 + entry).save(root / "images" / f"{key}.png")
        paths = []
        for result in range(3):
            relative = f"images/{key}_{result}.png"
            random_picture(5000 + 10 * entry + result, size=(160, 120)).save(root / "image_search" / relative)
            paths.append(relative)
        cache[key] = {"tool_returned_web_title": [f"{key} result {r}" for r in range(3)], "cached_images_path": paths}
        queries.append({"index": key, "image_path": f"images/{key}.png", "answer": key, "gold_title": f"{key} result 0"})
    (root / "image_search" / "cache.json").write_text(json.dumps(cache), encoding="utf-8")
    (root / "image_search" / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def standin_server() -> Iterator[StandIn]:
    port = free_port()
    state = StandIn(base_url=f"http://127.0.0.1:{port}")
    server = make_server("127.0.0.1", port, build_app(state), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture()
def standin(standin_server: StandIn) -> StandIn:
    standin_server.reset()
    return standin_server
