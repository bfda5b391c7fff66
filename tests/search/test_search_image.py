"""Image search: exact index lookup, near-duplicate similarity matches, true negatives, index persistence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from search_fixtures import near_duplicate, random_picture

from deepeyes import wire
from deepeyes.search.config import SearchConfig
from deepeyes.search.image import ImageSearcher


def image_config(root: Path) -> SearchConfig:
    cfg = SearchConfig()
    cfg.image.cache_json = str(root / "image_search" / "cache.json")
    cfg.image.queries_jsonl = str(root / "image_search" / "queries.jsonl")
    cfg.image.query_image_root = str(root)
    return cfg


def query_image(root: Path, key: str) -> Image.Image:
    return Image.open(root / "images" / f"{key}.png").convert("RGB")


def test_exact_index_lookup_returns_titles_and_thumbnails(image_cache_dir: Path) -> None:
    cfg = image_config(image_cache_dir)
    cfg.image.thumbnail_size = 64
    searcher = ImageSearcher.from_config(cfg)
    outcome = searcher.search(random_picture(123), sample_index="sample-002")
    assert outcome.matched_by == "index" and outcome.error is None
    assert outcome.titles == ["sample-002 result 0", "sample-002 result 1", "sample-002 result 2"]
    assert len(outcome.thumbnails) == 3 and all(max(t.size) == 64 for t in outcome.thumbnails)
    expected = np.asarray(Image.open(image_cache_dir / "image_search/images/sample-002_1.png").convert("RGB").resize((64, 48)))
    assert np.abs(np.asarray(outcome.thumbnails[1]).astype(int) - expected).mean() < 3
    assert outcome.render() == wire.tool_response(wire.image_search_body(outcome.titles))
    assert outcome.render().count(wire.IMAGE_PLACEHOLDER) == 3


@pytest.mark.parametrize("offset", [(0.0, 0.0), (1.0, 1.0), (0.3, 0.8)])
def test_near_duplicate_query_image_finds_its_entry(image_cache_dir: Path, offset: tuple[float, float]) -> None:
    searcher = ImageSearcher.from_config(image_config(image_cache_dir))
    for key in ("sample-000", "sample-004"):
        outcome = searcher.search(near_duplicate(query_image(image_cache_dir, key), offset))
        assert outcome.matched_by == "similarity", f"{key}: no match"
        assert outcome.titles[0] == f"{key} result 0"
        assert outcome.score is not None and outcome.score >= searcher.similarity_threshold


def test_unknown_sample_index_falls_back_to_similarity(image_cache_dir: Path) -> None:
    searcher = ImageSearcher.from_config(image_config(image_cache_dir))
    outcome = searcher.search(query_image(image_cache_dir, "sample-005"), sample_index="not-in-cache")
    assert outcome.matched_by == "similarity" and outcome.titles[0] == "sample-005 result 0"
    assert outcome.score == pytest.approx(1.0, abs=1e-4)


def test_unrelated_image_gives_no_results(image_cache_dir: Path) -> None:
    searcher = ImageSearcher.from_config(image_config(image_cache_dir))
    for seed in (77, 78, 79):
        outcome = searcher.search(random_picture(seed))
        assert outcome.matched_by is None and outcome.titles == [] and outcome.error is None
        assert outcome.render() == wire.tool_response("No results found.")


def test_missing_image_is_an_error_observation(image_cache_dir: Path) -> None:
    outcome = ImageSearcher.from_config(image_config(image_cache_dir)).search(None)
    assert outcome.error == "there is no image to search with"
    assert outcome.render() == wire.error_response("image search", outcome.error)


def test_index_is_persisted_and_extended_incrementally(image_cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = image_config(image_cache_dir)
    index_dir = image_cache_dir / "image_search" / "similarity_index"
    first = ImageSearcher.from_config(cfg)
    assert len(first.index) == 6 and len(list(index_dir.glob("shard-*.npy"))) == 1

    caplog.set_level("INFO", logger="deepeyes.search.image")
    again = ImageSearcher.from_config(cfg)
    assert len(again.index) == 6 and "describing" not in caplog.text, "an unchanged cache must not be re-described"

    # A new entry appears in the cache: only its image is described, as a new shard.
    cache = json.loads((image_cache_dir / "image_search" / "cache.json").read_text())
    cache["sample-new"] = {"tool_returned_web_title": ["new result"], "cached_images_path": ["images/sample-000_0.png"]}
    (image_cache_dir / "image_search" / "cache.json").write_text(json.dumps(cache))
    random_picture(4242).save(image_cache_dir / "images" / "sample-new.png")
    with (image_cache_dir / "image_search" / "queries.jsonl").open("a") as handle:
        handle.write(json.dumps({"index": "sample-new", "image_path": "images/sample-new.png"}) + "\n")
    caplog.clear()
    extended = ImageSearcher.from_config(cfg)
    assert "describing 1 images" in caplog.text
    assert len(extended.index) == 7 and len(list(index_dir.glob("shard-*.npy"))) == 2
    assert extended.search(near_duplicate(random_picture(4242))).titles == ["new result"]


def test_user_added_image_survives_reload(image_cache_dir: Path) -> None:
    cfg = image_config(image_cache_dir)
    searcher = ImageSearcher.from_config(cfg)
    own_photo = random_picture(9001)
    assert searcher.search(own_photo).matched_by is None
    searcher.add_image("sample-003", own_photo, name="my-photo.jpg")
    reloaded = ImageSearcher.from_config(cfg)
    outcome = reloaded.search(near_duplicate(own_photo))
    assert outcome.matched_by == "similarity" and outcome.titles[0] == "sample-003 result 0"
    with pytest.raises(KeyError):
        reloaded.add_image("no-such-entry", own_photo, name="x")


def test_index_from_cached_images(image_cache_dir: Path) -> None:
    """With cached result images indexed too, a copy of a result picture finds its entry."""
    cfg = image_config(image_cache_dir)
    cfg.image.index_sources = ["queries", "cached_images"]
    searcher = ImageSearcher.from_config(cfg)
    assert len(searcher.index) == 6 + 18
    result_picture = Image.open(image_cache_dir / "image_search/images/sample-001_2.png")
    assert searcher.search(near_duplicate(result_picture)).titles[0] == "sample-001 result 0"

    cfg.image.index_sources = ["queries"]
    assert len(ImageSearcher.from_config(cfg).index) == 6, "rows of a source no longer configured are dropped"


def test_missing_cached_image_is_skipped_not_mismatched(image_cache_dir: Path) -> None:
    (image_cache_dir / "image_search/images/sample-001_1.png").unlink()
    outcome = ImageSearcher.from_config(image_config(image_cache_dir)).search(None, sample_index="sample-001")
    assert outcome.titles == ["sample-001 result 0", "sample-001 result 2"]
    assert len(outcome.thumbnails) == 2


def test_sample_data_near_duplicates_match(sample_dir: Path, tmp_path: Path) -> None:
    cfg = SearchConfig()
    cfg.image.cache_json = str(sample_dir / "image_search" / "cache.json")
    cfg.image.queries_jsonl = str(sample_dir / "image_search" / "queries.jsonl")
    cfg.image.query_image_root = str(sample_dir)
    cfg.image.index_dir = str(tmp_path / "index")
    searcher = ImageSearcher.from_config(cfg)
    queries = [json.loads(line) for line in (sample_dir / "image_search" / "queries.jsonl").read_text().splitlines() if line.strip()]
    assert queries
    for query in queries:
        picture = Image.open(sample_dir / query["image_path"]).convert("RGB")
        outcome = searcher.search(near_duplicate(picture))
        assert outcome.matched_by == "similarity", query["index"]
        assert query["gold_title"] in outcome.titles


def test_missing_cache_file_fails_clearly(tmp_path: Path) -> None:
    cfg = SearchConfig()
    cfg.image.cache_json = str(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="image-search cache not found"):
        ImageSearcher.from_config(cfg)


def test_descriptor_change_rebuilds_index(image_cache_dir: Path) -> None:
    cfg = image_config(image_cache_dir)
    ImageSearcher.from_config(cfg)
    meta = image_cache_dir / "image_search" / "similarity_index" / "meta.json"
    meta.write_text(json.dumps({"descriptor": "something-else", "format_version": 1}))
    rebuilt = ImageSearcher.from_config(cfg)
    assert len(rebuilt.index) == 6
    assert json.loads(meta.read_text())["descriptor"] == rebuilt.descriptor.name
    shutil.rmtree(meta.parent)
    assert len(ImageSearcher.from_config(cfg).index) == 6


def test_unreadable_image_is_an_error_observation(image_cache_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.png"
    random_picture(5).save(path)
    path.write_bytes(path.read_bytes()[:200])
    outcome = ImageSearcher.from_config(image_config(image_cache_dir)).search(Image.open(path))
    assert outcome.error is not None and outcome.error.startswith("the image could not be read")
    assert outcome.titles == [] and outcome.matched_by is None


def test_grey_pictures_match_their_near_duplicates(image_cache_dir: Path) -> None:
    """Grey pictures (documents, charts) have no chroma; JPEG noise in it must not matter."""
    grey = random_picture(31).convert("L").convert("RGB")
    searcher = ImageSearcher.from_config(image_config(image_cache_dir))
    searcher.add_image("sample-001", grey, name="grey.png")
    outcome = searcher.search(near_duplicate(grey))
    assert outcome.matched_by == "similarity" and outcome.titles[0] == "sample-001 result 0"
    assert searcher.search(random_picture(32).convert("L").convert("RGB")).matched_by is None
