"""The optional CLIP embedder (a tiny random CLIP built offline) and the cache converter CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from search_fixtures import random_picture

from deepeyes.search.config import SearchConfig
from deepeyes.search.convert_cache import main as convert_main
from deepeyes.search.image import ImageSearcher


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer CLIP saved with ``save_pretrained`` (no download)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 64},
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=8,
    )
    path = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def test_clip_descriptor_indexes_and_matches(image_cache_dir: Path, tiny_clip: Path) -> None:
    cfg = SearchConfig()
    cfg.image.cache_json = str(image_cache_dir / "image_search" / "cache.json")
    cfg.image.queries_jsonl = str(image_cache_dir / "image_search" / "queries.jsonl")
    cfg.image.query_image_root = str(image_cache_dir)
    cfg.image.descriptor = "clip"
    cfg.image.clip_checkpoint = str(tiny_clip)
    cfg.image.similarity_threshold = 0.999
    searcher = ImageSearcher.from_config(cfg)
    assert searcher.descriptor.name.startswith("clip:") and len(searcher.index) == 6
    vectors = searcher.descriptor.index_vectors([random_picture(1), random_picture(2)])
    assert vectors.shape == (2, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)

    from PIL import Image

    picture = Image.open(image_cache_dir / "images" / "sample-004.png")
    outcome = searcher.search(picture)
    assert outcome.matched_by == "similarity" and outcome.titles[0] == "sample-004 result 0"
    meta = json.loads((image_cache_dir / "image_search" / "similarity_index" / "meta.json").read_text())
    assert meta["descriptor"] == searcher.descriptor.name


def test_clip_without_checkpoint_fails_clearly(image_cache_dir: Path, tmp_path: Path) -> None:
    cfg = SearchConfig()
    cfg.image.cache_json = str(image_cache_dir / "image_search" / "cache.json")
    cfg.image.descriptor = "clip"
    with pytest.raises(ValueError, match="clip_checkpoint is not set"):
        ImageSearcher.from_config(cfg)
    cfg.image.clip_checkpoint = str(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint folder not found"):
        ImageSearcher.from_config(cfg)


def test_converter_resolves_paths_and_reports_missing(image_cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache_json = image_cache_dir / "image_search" / "cache.json"
    image_root = image_cache_dir / "image_search"
    (image_root / "images" / "sample-002_1.png").unlink()
    (image_root / "images" / "sample-005_0.png").unlink()
    output = tmp_path / "resolved.json"
    report = tmp_path / "missing.json"
    code = convert_main(
        ["--input_json", str(cache_json), "--image_root", str(image_root), "--output_json", str(output), "--missing_report", str(report)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "6 entries, 18 images, 2 missing in 2 entries" in printed
    assert f"missing in entry sample-002: {image_root / 'images' / 'sample-002_1.png'}" in printed
    converted = json.loads(output.read_text())
    assert len(converted) == 6
    assert len(converted["sample-002"]["cached_images_path"]) == 3, "missing images are kept unless --drop_missing"
    assert all(Path(p).is_absolute() for entry in converted.values() for p in entry["cached_images_path"])
    assert json.loads(report.read_text()) == {
        "sample-002": [str(image_root / "images" / "sample-002_1.png")],
        "sample-005": [str(image_root / "images" / "sample-005_0.png")],
    }

    code = convert_main(["--input_json", str(cache_json), "--output_json", str(output), "--drop_missing", "--strict"])
    assert code == 1
    assert "dropped 2 title/image pairs" in capsys.readouterr().out
    converted = json.loads(output.read_text())
    assert converted["sample-002"]["tool_returned_web_title"] == ["sample-002 result 0", "sample-002 result 2"]

    # The converted file works from anywhere: its paths no longer depend on an image root.
    cfg = SearchConfig()
    cfg.image.cache_json = str(output)
    cfg.image.queries_jsonl = None
    outcome = ImageSearcher.from_config(cfg).search(None, sample_index="sample-002")
    assert outcome.titles == ["sample-002 result 0", "sample-002 result 2"]


def test_converter_cli_help_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` through ``python -m``; the bad input through ``main`` in-process (an interpreter start costs ~20 s loaded)."""
    from deepeyes.search.convert_cache import main

    help_text = subprocess.run(
        [sys.executable, "-m", "deepeyes.search.convert_cache", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--input_json" in help_text and "--image_root" in help_text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"tool_returned_web_title": ["a", "b"], "cached_images_path": ["x.png"]}}))
    assert main(["--input_json", str(bad)]) == 2
    assert "entry '1' has 2 titles but 1 images" in capsys.readouterr().err
