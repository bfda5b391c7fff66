"""Hub names resolve through the real hub client against a stand-in hub on loopback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hub_standin import RunningHub, StandinHub

from deepeyes.hub import (
    HubResolutionError,
    extract_archives,
    looks_like_repo_id,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def _run_cli(args: list[str], hf_home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    environment.update(HF_HOME=str(hf_home), PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "deepeyes.hub", *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_hub_ids_are_told_apart_from_paths() -> None:
    assert looks_like_repo_id("honglyhly/DeepEyesV2_SFT")
    assert looks_like_repo_id("Qwen/Qwen2.5-VL-7B-Instruct@main")
    assert not looks_like_repo_id("data/sample/sft/seed.jsonl")
    assert not looks_like_repo_id("model")


def test_local_paths_win_over_hub_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert resolve("owner/name") == (tmp_path / "owner" / "name").resolve()


def test_neither_path_nor_hub_name_is_a_clear_error() -> None:
    with pytest.raises(HubResolutionError, match="DATA_PATH=./missing.json: no such file or directory"):
        resolve("./missing.json", "dataset", what="DATA_PATH")


def test_dataset_downloads_once_then_resolves_offline_from_the_cache(tmp_path: Path) -> None:
    hub = StandinHub()
    files = {"json/sft_part_0.json": b"[]", "images.zip": _zip({"images/a.png": b"png"})}
    hub.add("dataset", "honglyhly/DeepEyesV2_SFT", files)
    with RunningHub(hub) as running:
        first = _run_cli(["--name_or_path", "honglyhly/DeepEyesV2_SFT", "--repo_type", "dataset", "--extract"], tmp_path, HF_ENDPOINT=running.endpoint)
    assert first.returncode == 0, first.stderr
    snapshot, extracted = (Path(line) for line in first.stdout.split())
    assert snapshot.parent.parent.name == "datasets--honglyhly--DeepEyesV2_SFT"  # the hub cache's own layout
    assert snapshot.is_relative_to((tmp_path / "hub").resolve())
    assert (snapshot / "json" / "sft_part_0.json").read_bytes() == b"[]"
    assert (extracted / "images" / "a.png").read_bytes() == b"png"
    assert extracted == (tmp_path / "deepeyes" / "extracted" / snapshot.parent.parent.name / snapshot.name).resolve()  # not inside the hub cache
    assert any(r.startswith("GET /api/datasets/honglyhly/DeepEyesV2_SFT/revision/") for r in hub.requests)
    # The hub is gone now: offline, the cache answers.
    again = _run_cli(["--name_or_path", "honglyhly/DeepEyesV2_SFT", "--repo_type", "dataset"], tmp_path, HF_HUB_OFFLINE="1")
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()) == snapshot


def test_model_names_resolve_too(tmp_path: Path) -> None:
    hub = StandinHub()
    hub.add("model", "honglyhly/DeepEyesV2_7B_1031", {"config.json": b"{}"})
    with RunningHub(hub) as running:
        result = _run_cli(["--name_or_path", "honglyhly/DeepEyesV2_7B_1031"], tmp_path, HF_ENDPOINT=running.endpoint)
    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip()) / "config.json").read_bytes() == b"{}"


def test_offline_and_not_cached_says_what_to_do(tmp_path: Path) -> None:
    result = _run_cli(["--name_or_path", "Qwen/Qwen2.5-VL-7B-Instruct", "--what", "MODEL_PATH"], tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    assert "MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct" in result.stderr
    assert "HF_HUB_OFFLINE is set" in result.stderr and "hf download Qwen/Qwen2.5-VL-7B-Instruct" in result.stderr


def test_unknown_repository_is_named(tmp_path: Path) -> None:
    with RunningHub(StandinHub()) as running:
        result = _run_cli(["--name_or_path", "nobody/nothing", "--repo_type", "dataset"], tmp_path, HF_ENDPOINT=running.endpoint)
    assert result.returncode == 2
    assert "the hub has no dataset nobody/nothing" in result.stderr


def test_archives_unpack_once_and_refuse_escaping_members(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "cached_images.zip").write_bytes(_zip({"cached_images/x.jpg": b"jpg"}))
    assert extract_archives(folder) == folder.resolve()
    assert (folder / "cached_images" / "x.jpg").read_bytes() == b"jpg"
    (folder / "cached_images" / "x.jpg").unlink()
    extract_archives(folder)  # the marker makes the second call a no-op
    assert not (folder / "cached_images" / "x.jpg").exists()
    (folder / "evil.zip").write_bytes(_zip({"../outside.txt": b"x"}))
    with pytest.raises(ValueError, match="outside"):
        extract_archives(folder)
    assert not (tmp_path / "outside.txt").exists()
