"""Training and inference image budgets (issue 25): a recipe that trains at another budget than
the checkpoint's processor is run at is warned about, naming both, and the published recipes
say why theirs differ."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from transformers import AutoProcessor

from deepeyes.data.sft_length import (
    LengthSettings,
    SequenceLengthCounter,
    image_budget_warning,
)
from deepeyes.paths import REPO_ROOT

RECIPES = REPO_ROOT / "cold_start" / "recipes"


def test_the_warning_names_both_budgets_and_how_to_agree(tiny_model_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    assert image_budget_warning(processor, 224 * 224) is None  # the tiny recipe trains at its processor's budget
    warning = image_budget_warning(processor, 1003520)
    assert warning is not None and "image_max_pixels=1003520" in warning and "allows 50176" in warning
    assert "IMAGE_MAX_PIXELS=50176" in warning and "size['longest_edge'] = 1003520" in warning


def test_the_length_check_of_the_conversion_warns(tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deepeyes.data.sft_length"):
        SequenceLengthCounter(tiny_model_dir, LengthSettings(image_max_pixels=1003520))
    assert "image budget: training resizes images to at most image_max_pixels=1003520" in caplog.text


@pytest.mark.parametrize("name", ["qwen2_5_vl_7b_full.yaml", "qwen2_5_vl_32b_full.yaml", "qwen2_5_vl_7b_lora.yaml"])
def test_published_recipes_that_differ_say_so(name: str) -> None:
    text = (RECIPES / name).read_text(encoding="utf-8")
    assert yaml.safe_load(text)["image_max_pixels"] == 1003520
    assert "Image budget, on purpose below the processor's 12845056" in text and 'docs/cold_start.md, "Image budget"' in text
