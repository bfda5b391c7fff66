"""The sample image-search cache set-up writes where the seed's documented ``search_cache_path`` points."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deepeyes.paths import REPO_ROOT
from deepeyes.search.image import ImageSearcher
from deepeyes.search.sample_cache import (
    PUBLISHED_CACHE_JSON,
    SampleCacheArguments,
    main,
)
from deepeyes.tool_manager import ToolManager

SEED_PATH = "./reinforcement_learning/search_cache"


def _seed_tool_manager() -> ToolManager:
    # The seed's documented call, verbatim (nothing is contacted before start()).
    return ToolManager(code_sandbox_ports=[8888, 8889, 8900], redis_host="localhost", redis_port=6379, search_cache_path="./reinforcement_learning/search_cache", text_search_api_type="baidu")


def _search(sample_index: str):
    image = _seed_tool_manager().resolved_config().search.image
    return image, ImageSearcher.from_config(image).search(None, sample_index=sample_index)


@pytest.fixture()
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory to build the cache in, as setup.sh does in the checkout."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _build(image_cache_dir: Path) -> str:
    assert main(["--sample_cache_json", str(image_cache_dir / "image_search" / "cache.json"), "--out", SEED_PATH]) == 0
    return SEED_PATH


def test_the_default_folder_is_the_seeds_path_in_the_checkout() -> None:
    assert Path(SampleCacheArguments().out) == (REPO_ROOT / SEED_PATH).resolve()


def test_the_seed_snippet_loads_the_built_sample(image_cache_dir: Path, checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _build(image_cache_dir)
    assert "built at" in capsys.readouterr().out
    folder = checkout / SEED_PATH
    assert sorted(p.name for p in folder.glob("*.json")) == [PUBLISHED_CACHE_JSON]  # the published layout
    assert [p.name for p in (folder / "cached_images").iterdir()] == ["sample.zip"]
    image, outcome = _search("sample-001")
    assert Path(image.cache_json) == folder.resolve() / PUBLISHED_CACHE_JSON
    assert outcome.titles == [f"sample-001 result {r}" for r in range(3)]
    source = Image.open(image_cache_dir / "image_search" / "images" / "sample-001_0.png").convert("RGB")
    assert list(outcome.thumbnails[0].getdata()) == list(source.getdata())  # read from the unpacked archive
    assert main(["--sample_cache_json", str(image_cache_dir / "image_search" / "cache.json"), "--out", SEED_PATH]) == 0
    assert capsys.readouterr().out.strip() == "up to date"


def test_the_published_cache_downloaded_over_it_replaces_it(image_cache_dir: Path, checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = checkout / _build(image_cache_dir)
    published = {"fvqa_train_7": {"tool_returned_web_title": ["Orange lighthouse"], "cached_images_path": ["cached_images/train/fvqa_7_0.png"]}}
    picture = io.BytesIO()
    Image.new("RGB", (40, 30), (250, 120, 0)).save(picture, format="PNG")
    with zipfile.ZipFile(folder / "cached_images" / "train.zip", "w") as bundle:
        bundle.writestr("train/fvqa_7_0.png", picture.getvalue())
    (folder / PUBLISHED_CACHE_JSON).write_text(json.dumps(published), encoding="utf-8")
    capsys.readouterr()
    _build(image_cache_dir)  # set-up again: the published cache stays
    assert "left as it is" in capsys.readouterr().out
    assert json.loads((folder / PUBLISHED_CACHE_JSON).read_text(encoding="utf-8")) == published
    _, outcome = _search("fvqa_train_7")
    assert outcome.titles == ["Orange lighthouse"] and outcome.thumbnails[0].getpixel((0, 0)) == (250, 120, 0)


def test_a_changed_sample_is_rebuilt_and_unpacked_again(image_cache_dir: Path, checkout: Path) -> None:
    _build(image_cache_dir)
    _search("sample-001")  # unpacks the archive
    cache_file = image_cache_dir / "image_search" / "cache.json"
    cache = json.loads(cache_file.read_text(encoding="utf-8"))
    cache["sample-001"]["tool_returned_web_title"][0] = "renamed"
    cache_file.write_text(json.dumps(cache), encoding="utf-8")
    Image.new("RGB", (160, 120), (1, 2, 3)).save(image_cache_dir / "image_search" / "images" / "sample-001_0.png")
    _build(image_cache_dir)
    _, outcome = _search("sample-001")
    assert outcome.titles[0] == "renamed" and outcome.thumbnails[0].getpixel((0, 0)) == (1, 2, 3)


def test_a_folder_it_did_not_write_is_left_alone(image_cache_dir: Path, checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = checkout / SEED_PATH
    folder.mkdir(parents=True)
    (folder / "my_cache.json").write_text("{}", encoding="utf-8")
    _build(image_cache_dir)
    assert "left as it is" in capsys.readouterr().out
    assert [p.name for p in folder.iterdir()] == ["my_cache.json"]


def test_a_sample_with_missing_images_is_refused(image_cache_dir: Path, checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (image_cache_dir / "image_search" / "images" / "sample-002_1.png").unlink()
    assert main(["--sample_cache_json", str(image_cache_dir / "image_search" / "cache.json"), "--out", SEED_PATH]) == 2
    assert "sample-002" in capsys.readouterr().err and not (checkout / SEED_PATH).exists()
