"""Recipes and environment overrides become the LLaMA-Factory YAML the script runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from deepeyes.data import sft_prepare
from deepeyes.data.sft_length import LengthSettings
from deepeyes.data.sft_prepare import (
    PrepareError,
    RunPaths,
    build_train_config,
    check_with_llamafactory,
    env_overrides,
    load_recipe,
    prepare,
)
from deepeyes.paths import REPO_ROOT

RECIPES = REPO_ROOT / "cold_start" / "recipes"


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_passes_llamafactorys_own_check(recipe: Path, tmp_path: Path) -> None:
    # A folder with a config.json is all a model needs here: the check loads nothing.
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    config = build_train_config(load_recipe(recipe), {"model_name_or_path": str(model)}, _paths(tmp_path), "d")
    check_with_llamafactory(config)


def test_a_misspelt_key_stops_before_the_data_is_converted(seed_file: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text((RECIPES / "tiny_cpu_full.yaml").read_text() + "lora_rnak: 8\n")
    verbosity = transformers.logging.get_verbosity()
    paths = RunPaths(data=[seed_file], output_dir=tmp_path / "run")
    with pytest.raises(PrepareError, match=re.escape("LLaMA-Factory refuses") + ".*lora_rnak"):
        prepare(recipe, paths, {"MODEL_NAME_OR_PATH": str(tiny_model_dir)}, tmp_path)
    assert not (tmp_path / "run" / sft_prepare.DATA_SUBDIR).exists()  # nothing converted
    assert transformers.logging.get_verbosity() == verbosity  # LLaMA-Factory's log level is undone


@pytest.mark.parametrize("name", ["qwen2_5_vl_7b_full.yaml", "qwen2_5_vl_32b_full.yaml"])
def test_full_recipes_carry_the_published_hyperparameters(name: str) -> None:
    recipe = load_recipe(RECIPES / name)
    published = {
        "finetuning_type": "full",
        "freeze_vision_tower": True,
        "freeze_multi_modal_projector": True,
        "learning_rate": 1.0e-5,
        "num_train_epochs": 3,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "cutoff_len": 20480,
        "bf16": True,
        "template": "qwen2_vl",
    }
    assert {key: recipe[key] for key in published} == published
    deepspeed = json.loads(Path(recipe["deepspeed"]).read_text())
    assert deepspeed["zero_optimization"]["stage"] == 3


def test_lora_recipe_is_rank_8_as_in_the_original_release() -> None:
    recipe = load_recipe(RECIPES / "qwen2_5_vl_7b_lora.yaml")
    assert (recipe["finetuning_type"], recipe["lora_rank"], recipe["learning_rate"], recipe["num_train_epochs"]) == ("lora", 8, 2.0e-5, 3)
    assert (recipe["per_device_train_batch_size"], recipe["gradient_accumulation_steps"], recipe["cutoff_len"]) == (8, 4, 4096)


def test_environment_overrides_map_onto_llamafactory_keys(tmp_path: Path) -> None:
    environ = {
        "MAX_SEQ_LENGTH": "1024",
        "BATCH_SIZE": "2",
        "LEARNING_RATE": "3e-4",
        "NUM_TRAIN_EPOCHS": "1.5",
        "GRADIENT_ACCUMULATION_STEPS": "4",
        "LORA_RANK": "32",
        "BF16": "true",
        "FREEZE_VISION_TOWER": "false",
        "USE_PEFT": "false",
        "MODEL_NAME_OR_PATH": "models/m",
        "DEEPSPEED": "ds.json",
        "MAX_SAMPLES": "",  # empty means "not set"
    }
    assert env_overrides(environ, tmp_path) == {
        "cutoff_len": 1024,
        "per_device_train_batch_size": 2,
        "learning_rate": 3e-4,
        "num_train_epochs": 1.5,
        "gradient_accumulation_steps": 4,
        "lora_rank": 32,
        "bf16": True,
        "freeze_vision_tower": False,
        "freeze_multi_modal_projector": False,
        "finetuning_type": "full",
        "model_name_or_path": str(tmp_path / "models/m"),
        "deepspeed": str(tmp_path / "ds.json"),
    }


def test_finetuning_type_wins_over_use_peft(tmp_path: Path) -> None:
    assert env_overrides({"USE_PEFT": "true", "FINETUNING_TYPE": "freeze"}, tmp_path) == {"finetuning_type": "freeze"}


@pytest.mark.parametrize(("variable", "value"), [("FP16", "maybe"), ("BATCH_SIZE", "two"), ("LEARNING_RATE", "fast")])
def test_bad_values_name_the_variable(variable: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match=variable):
        env_overrides({variable: value}, tmp_path)


def _paths(tmp_path: Path) -> RunPaths:
    return RunPaths(data=[tmp_path / "data.jsonl"], output_dir=tmp_path / "run")


def test_run_owned_keys_point_at_the_converted_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / "tiny_cpu_full.yaml")
    config = build_train_config(recipe, {"model_name_or_path": str(tiny_model_dir)}, _paths(tmp_path), "mine")
    assert config["dataset"] == "mine"
    assert config["dataset_dir"] == str(tmp_path / "run" / sft_prepare.DATA_SUBDIR)
    assert config["output_dir"] == str(tmp_path / "run")


def test_a_missing_model_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="MODEL_NAME_OR_PATH=.*not a local model directory"):
        build_train_config(load_recipe(RECIPES / "qwen2_5_vl_7b_full.yaml"), {}, _paths(tmp_path), "d")


def test_a_missing_deepspeed_config_is_reported(tiny_model_dir: Path, tmp_path: Path) -> None:
    overrides = {"model_name_or_path": str(tiny_model_dir), "deepspeed": str(tmp_path / "nope.json")}
    with pytest.raises(PrepareError, match="DEEPSPEED"):
        build_train_config(load_recipe(RECIPES / "tiny_cpu_full.yaml"), overrides, _paths(tmp_path), "d")


def test_missing_data_is_reported_first(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="DATA_PATH=.*no such file"):
        prepare(RECIPES / "tiny_cpu_full.yaml", _paths(tmp_path), {}, tmp_path)


def test_export_yaml_merges_the_adapter(seed_file: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    paths = RunPaths(data=[seed_file], output_dir=tmp_path / "run", export_dir=tmp_path / "merged")
    overrides = {"MODEL_NAME_OR_PATH": str(tiny_model_dir), "FINETUNING_TYPE": "lora"}
    train_yaml = prepare(RECIPES / "tiny_cpu_full.yaml", paths, overrides, tmp_path)
    train = yaml.safe_load(train_yaml.read_text())
    export = yaml.safe_load((tmp_path / "run" / sft_prepare.EXPORT_YAML).read_text())
    assert export["adapter_name_or_path"] == train["output_dir"]
    assert export["export_dir"] == str(tmp_path / "merged")
    assert (Path(train["dataset_dir"]) / "dataset_info.json").is_file()


def test_tiny_recipe_trains_at_the_image_size_hf_policy_uses(tiny_model_dir: Path) -> None:
    processor_config = json.loads((tiny_model_dir / "processor_config.json").read_text())
    assert load_recipe(RECIPES / "tiny_cpu_full.yaml")["image_max_pixels"] == processor_config["image_processor"]["size"]["longest_edge"]


def test_video_settings_in_the_training_config_reach_the_token_count() -> None:
    """The converter counts video tokens with the values the training run will use: a recipe's
    own video keys, else LLaMA-Factory's defaults (a wrong count passes over-long samples)."""
    assert sft_prepare.length_settings({}) == LengthSettings(image_max_pixels=768 * 768, image_min_pixels=32 * 32)
    settings = sft_prepare.length_settings({"video_max_pixels": 4096, "video_min_pixels": 64, "video_fps": 1, "video_maxlen": 8, "template": "qwen2_vl"})
    assert (settings.video_max_pixels, settings.video_min_pixels, settings.video_fps, settings.video_maxlen) == (4096, 64, 1.0, 8)
