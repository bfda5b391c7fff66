"""The seed's documented ``ToolManager(...)`` call, with the published search-cache folder and a provider preset."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.trajectory import Action
from deepeyes.utils.processes import RedisServer

SEED_CACHE = "./reinforcement_learning/search_cache"


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def seed_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the published DeepEyesV2_Search_Cache where the seed's docs unpack it."""
    folder = tmp_path / SEED_CACHE
    (folder / "cached_images").mkdir(parents=True)
    with zipfile.ZipFile(folder / "cached_images" / "train.zip", "w") as bundle:
        bundle.writestr("train/fvqa_7_0.png", _png((250, 120, 0)))
    cache = {"fvqa_train_7": {"tool_returned_web_title": ["Orange lighthouse"], "cached_images_path": ["cached_images/train/fvqa_7_0.png"]}}
    (folder / "fvqa_train_image_search_results_cache.json").write_text(json.dumps(cache), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BAIDU_SEARCH_API_KEY", raising=False)
    return tmp_path


def test_the_seed_call_constructs_without_starting_anything(seed_checkout: Path) -> None:
    tool_manager = ToolManager(
        code_sandbox_ports=[8888, 8889, 8900],
        redis_host="localhost",
        redis_port=6379,
        search_cache_path="./reinforcement_learning/search_cache",
        text_search_api_type="baidu",
    )
    assert tool_manager.config.sandbox.ports == [8888, 8889, 8900]
    assert (tool_manager.config.sandbox.redis_host, tool_manager.config.sandbox.redis_port) == ("localhost", 6379)
    assert tool_manager.config.search.text.backend == "http"
    assert tool_manager.config.search.text.http.preset == "baidu"
    assert tool_manager.sandbox_client is None  # no sandbox client until start()
    tool_manager.disable_tools(["text_search", "image_search"])
    assert tool_manager.disabled_tools == {"search", "image_search"}
    tool_manager.disable_tools(["code_execution"])
    assert "code" in tool_manager.disabled_tools


def test_constructing_contacts_no_port_and_leaves_the_callers_config_alone(seed_checkout: Path) -> None:
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    try:
        sandbox_port, redis_port = (s.getsockname()[1] for s in listeners)
        config = ToolManagerConfig()
        before = (list(config.sandbox.ports), config.sandbox.redis_port, config.search.text.backend, config.search.image.cache_json)
        manager = ToolManager(
            code_sandbox_ports=[sandbox_port], redis_host="127.0.0.1", redis_port=redis_port,
            search_cache_path=SEED_CACHE, text_search_api_type="bing", config=config,
        )
        assert (list(config.sandbox.ports), config.sandbox.redis_port, config.search.text.backend, config.search.image.cache_json) == before
        assert manager.config.search.text.http.preset == "bing"
        for listener in listeners:
            listener.settimeout(0.2)
            with pytest.raises(TimeoutError):  # nobody knocked
                listener.accept()
    finally:
        for listener in listeners:
            listener.close()


def test_first_search_names_the_missing_key_and_the_published_cache_answers(seed_checkout: Path, redis_server: RedisServer) -> None:
    # The seed's call, with the test's real Redis instead of one on 6379.
    manager = ToolManager(
        code_sandbox_ports=[8888, 8889, 8900],
        redis_host=redis_server.host,
        redis_port=redis_server.port,
        search_cache_path=SEED_CACHE,
        text_search_api_type="baidu",
    )
    manager.disable_tools(["code_execution"])  # no sandbox runs on 8888 here
    with manager:
        session = manager.open_session([Image.new("RGB", (40, 30), "white")], sample_index="fvqa_train_7")
        searched = manager.execute(session, Action("search", "height of the eiffel tower"))
        assert searched.observation.status == "error"
        assert "BAIDU_SEARCH_API_KEY" in searched.observation.text
        found = manager.execute(session, Action("image_search"))
        assert found.observation.status == "success", found.observation.text
        assert "Orange lighthouse" in found.observation.text
        assert found.images[0].getpixel((0, 0))[:3] == (250, 120, 0)  # read from the unpacked train.zip
        manager.disable_tools(["text_search", "image_search"])
        refused = manager.execute(manager.open_session([]), Action("search", "anything"))
        assert refused.observation.status == "disabled"
    assert (seed_checkout / SEED_CACHE / "cached_images" / "train" / "fvqa_7_0.png").is_file()


def test_the_search_cache_by_hub_name(tmp_path: Path) -> None:
    """``search_cache_path=honglyhly/DeepEyesV2_Search_Cache``: fetched from a stand-in hub, unpacked beside the snapshot."""
    import os
    import subprocess
    import sys

    from hub_standin import RunningHub, StandinHub

    from deepeyes.paths import REPO_ROOT

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("train/fvqa_7_0.png", _png((250, 120, 0)))
    cache = {"fvqa_train_7": {"tool_returned_web_title": ["Orange lighthouse"], "cached_images_path": ["cached_images/train/fvqa_7_0.png"]}}
    hub = StandinHub()
    hub.add("dataset", "honglyhly/DeepEyesV2_Search_Cache", {
        "fvqa_train_image_search_results_cache.json": json.dumps(cache).encode(), "cached_images/train.zip": archive.getvalue(),
    })
    code = (
        "from deepeyes.tool_manager import ToolManager\n"
        "image = ToolManager(search_cache_path='honglyhly/DeepEyesV2_Search_Cache', text_search_api_type='local').resolved_config().search.image\n"
        "print(image.cache_json); print(image.image_root)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    with RunningHub(hub) as running:
        env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=running.endpoint, PYTHONPATH=str(REPO_ROOT), HF_HUB_DISABLE_TELEMETRY="1")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    cache_json, image_root = (Path(line) for line in result.stdout.split())
    assert cache_json.name == "fvqa_train_image_search_results_cache.json" and "datasets--honglyhly--DeepEyesV2_Search_Cache" in str(cache_json)
    assert image_root.parent.name == "datasets--honglyhly--DeepEyesV2_Search_Cache" and image_root.parent.parent.name == "extracted" and (image_root / "cached_images" / "train" / "fvqa_7_0.png").is_file()
