"""The published search-cache folder (fvqa_* JSON + zipped cached_images) works as search_cache_path."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deepeyes.search.config import ImageSearchConfig
from deepeyes.search.image import ImageSearcher
from deepeyes.search.image_cache import ImageCacheError
from deepeyes.search.published_cache import image_search_for_cache_path


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def published_cache(tmp_path: Path) -> Path:
    """A miniature DeepEyesV2_Search_Cache as unpacked from the hub: JSON + zipped images."""
    folder = tmp_path / "search_cache"
    (folder / "cached_images").mkdir(parents=True)
    with zipfile.ZipFile(folder / "cached_images" / "train.zip", "w") as bundle:
        bundle.writestr("train/fvqa_1_0.png", _png((200, 10, 10)))
        bundle.writestr("train/fvqa_1_1.png", _png((10, 200, 10)))
    cache = {
        "fvqa_train_1": {
            "tool_returned_web_title": ["Red tower, Springfield", "Green bridge"],
            "cached_images_path": ["cached_images/train/fvqa_1_0.png", "cached_images/train/fvqa_1_1.png"],
        }
    }
    (folder / "fvqa_train_image_search_results_cache.json").write_text(json.dumps(cache), encoding="utf-8")
    return folder


def test_the_published_folder_is_enough(published_cache: Path) -> None:
    config = image_search_for_cache_path(ImageSearchConfig(queries_jsonl=None), str(published_cache))
    assert Path(config.cache_json).name == "fvqa_train_image_search_results_cache.json"
    searcher = ImageSearcher.from_config(config)
    outcome = searcher.search(None, sample_index="fvqa_train_1")
    assert outcome.titles == ["Red tower, Springfield", "Green bridge"]
    assert outcome.thumbnails[0].getpixel((0, 0))[:3] == (200, 10, 10)  # read from the unpacked archive


def test_a_cache_json_file_still_works(published_cache: Path) -> None:
    file = published_cache / "fvqa_train_image_search_results_cache.json"
    assert image_search_for_cache_path(ImageSearchConfig(), str(file)).cache_json == str(file.resolve())


def test_a_folder_without_a_cache_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageCacheError, match="no cache JSON"):
        image_search_for_cache_path(ImageSearchConfig(), str(tmp_path))
