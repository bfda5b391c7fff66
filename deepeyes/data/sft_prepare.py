"""Prepare one cold-start SFT run: merge recipe + environment overrides, convert the data,
write the LLaMA-Factory YAML files that ``cold_start/run_cold_start.sh`` then runs.

Why a Python step in front of ``llamafactory-cli``: the data must be converted and
validated with the *same* ``cutoff_len``, template and image size the training will use,
and paths must be checked before minutes of model loading. The recipe YAML holds the
defaults; environment variables (named as in the original DeepEyes scripts) override
single keys, so ``LEARNING_RATE=1e-4 bash cold_start/run_cold_start.sh`` does what it says.
The merged settings go through LLaMA-Factory's own ``get_train_args`` before the data is
converted, so a misspelt key stops the run at once, in LLaMA-Factory's words.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transformers
import yaml

from deepeyes.cli import parse_cli
from deepeyes.data.sft_length import LengthSettings
from deepeyes.data.sft_readers import InputError
from deepeyes.data.to_llamafactory import ConvertOptions, ValidationFailed, convert
from deepeyes.paths import resolve_path

TRAIN_YAML = "llamafactory_train.yaml"
EXPORT_YAML = "llamafactory_export.yaml"
DATA_SUBDIR = "sft_data"
FINETUNING_TYPES = ("lora", "full", "freeze")
#: LLaMA-Factory's own default; the converter must count image tokens with the same value.
LF_IMAGE_MIN_PIXELS = 32 * 32
LF_IMAGE_MAX_PIXELS = 768 * 768


class PrepareError(ValueError):
    """A setting or path is unusable; the message says which and how to fix it."""


def _boolean(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise PrepareError(f"{name}={text!r}: expected true or false")


def _number(kind: Callable[[str], Any]) -> Callable[[str, str], Any]:
    def parse(name: str, text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise PrepareError(f"{name}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None

    return parse


def _text(name: str, text: str) -> str:
    return text


@dataclass(frozen=True)
class EnvSetting:
    """One environment variable and the LLaMA-Factory key(s) it sets."""

    variable: str
    keys: tuple[str, ...]
    parse: Callable[[str, str], Any]


#: Variables that map one-to-one (or one-to-several) onto LLaMA-Factory keys.
ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting("MAX_SEQ_LENGTH", ("cutoff_len",), _number(int)),
    EnvSetting("BATCH_SIZE", ("per_device_train_batch_size",), _number(int)),
    EnvSetting("LEARNING_RATE", ("learning_rate",), _number(float)),
    EnvSetting("NUM_TRAIN_EPOCHS", ("num_train_epochs",), _number(float)),
    EnvSetting("GRADIENT_ACCUMULATION_STEPS", ("gradient_accumulation_steps",), _number(int)),
    EnvSetting("LORA_RANK", ("lora_rank",), _number(int)),
    EnvSetting("LORA_TARGET", ("lora_target",), _text),
    EnvSetting("FP16", ("fp16",), _boolean),
    EnvSetting("BF16", ("bf16",), _boolean),
    EnvSetting("FREEZE_VISION_TOWER", ("freeze_vision_tower", "freeze_multi_modal_projector"), _boolean),
    EnvSetting("MAX_SAMPLES", ("max_samples",), _number(int)),
    EnvSetting("IMAGE_MAX_PIXELS", ("image_max_pixels",), _number(int)),
    EnvSetting("TEMPLATE", ("template",), _text),
    EnvSetting("LOGGING_STEPS", ("logging_steps",), _number(int)),
    EnvSetting("SEED", ("seed",), _number(int)),
    EnvSetting("USE_CPU", ("use_cpu",), _boolean),
)


def env_overrides(environ: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """LLaMA-Factory keys set by the (non-empty) environment variables."""
    overrides: dict[str, Any] = {}
    for setting in ENV_SETTINGS:
        text = environ.get(setting.variable, "")
        if text:
            value = setting.parse(setting.variable, text)
            overrides.update({key: value for key in setting.keys})
    if environ.get("USE_PEFT"):
        overrides["finetuning_type"] = "lora" if _boolean("USE_PEFT", environ["USE_PEFT"]) else "full"
    if environ.get("FINETUNING_TYPE"):  # the explicit type wins over USE_PEFT
        overrides["finetuning_type"] = environ["FINETUNING_TYPE"]
    if environ.get("MODEL_NAME_OR_PATH"):
        overrides["model_name_or_path"] = str((cwd / environ["MODEL_NAME_OR_PATH"]).resolve())
    if environ.get("DEEPSPEED"):
        overrides["deepspeed"] = str((cwd / environ["DEEPSPEED"]).resolve())
    return overrides


def load_recipe(path: Path) -> dict[str, Any]:
    """A recipe is a LLaMA-Factory YAML; a relative ``deepspeed`` path in it is taken from the current directory (as everywhere)."""
    if not path.is_file():
        raise PrepareError(f"RECIPE={path}: no such file")
    recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(recipe, dict):
        raise PrepareError(f"RECIPE={path}: expected a mapping of LLaMA-Factory keys")
    if recipe.get("deepspeed"):
        recipe["deepspeed"] = str(resolve_path(recipe["deepspeed"]))
    return recipe


@dataclass
class RunPaths:
    data: list[Path]
    output_dir: Path
    image_root: Path | None = None
    export_dir: Path | None = None


def build_train_config(recipe: dict[str, Any], overrides: dict[str, Any], paths: RunPaths, dataset_name: str) -> dict[str, Any]:
    """Recipe, then overrides, then the keys this run owns (data and output locations)."""
    config = {**recipe, **overrides}
    config.update(
        dataset=dataset_name,
        dataset_dir=str(paths.output_dir / DATA_SUBDIR),
        output_dir=str(paths.output_dir),
        overwrite_output_dir=True,
    )
    _check(config)
    return config


def _check(config: dict[str, Any]) -> None:
    model = config.get("model_name_or_path")
    if not model:
        raise PrepareError("no model: set MODEL_NAME_OR_PATH to a local model directory")
    if not (Path(model) / "config.json").is_file():
        raise PrepareError(
            f"MODEL_NAME_OR_PATH={model}: not a local model directory (no config.json). Nothing is downloaded at run "
            "time: point it at a local checkpoint (the tiny default model is built by bash setup.sh)."
        )
    if config.get("finetuning_type") not in FINETUNING_TYPES:
        raise PrepareError(f"FINETUNING_TYPE={config.get('finetuning_type')!r}: expected one of {', '.join(FINETUNING_TYPES)}")
    if config.get("deepspeed") and not Path(config["deepspeed"]).is_file():
        raise PrepareError(f"DEEPSPEED={config['deepspeed']}: no such DeepSpeed config file")
    if config.get("fp16") and config.get("bf16"):
        raise PrepareError("FP16 and BF16 are both true: choose one")


@contextlib.contextmanager
def _quiet_llamafactory() -> Iterator[None]:
    """Silence what ``get_train_args`` logs for a run it thinks is starting (device, precision
    advice: the training run prints them again) and undo the transformers log level it sets."""
    verbosity = transformers.logging.get_verbosity()
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.reset_format()


def check_with_llamafactory(config: dict[str, Any]) -> None:
    """Parse the training settings with LLaMA-Factory's own ``get_train_args`` (what
    ``llamafactory-cli train`` does first), so that a key it does not know or a combination it
    refuses stops the run here, with its message, before minutes of data conversion.

    ``get_train_args`` only parses and cross-checks: no model, tokenizer or data is loaded and
    nothing is downloaded. It also checks how the process was launched, which this one was
    not (no torchrun); so the check sees a single CPU process: ``use_cpu`` is set and
    ``deepspeed`` left out (parsing it initialises DeepSpeed's process group; its file is
    checked by :func:`_check`). Device, precision support and launch are checked again by
    LLaMA-Factory when the run starts. ``get_train_args`` checks keys and combinations, not
    the types of values.

    Raises:
        PrepareError: LLaMA-Factory refuses the settings; the message is its own.
    """
    # Seconds of imports: paid only when a run is prepared.
    from llamafactory.hparams import get_train_args

    single_process = {key: value for key, value in config.items() if key != "deepspeed"} | {"use_cpu": True}
    with _quiet_llamafactory():
        try:
            get_train_args(single_process)
        except (ValueError, TypeError) as exc:
            raise PrepareError(f"LLaMA-Factory refuses the training settings (recipe + overrides): {exc}") from exc


def export_config(train: dict[str, Any], export_dir: Path) -> dict[str, Any]:
    """LLaMA-Factory ``export`` settings that merge the trained LoRA adapter into the base model."""
    return {
        "model_name_or_path": train["model_name_or_path"],
        "adapter_name_or_path": train["output_dir"],
        "template": train.get("template", "qwen2_vl"),
        "finetuning_type": "lora",
        "export_dir": str(export_dir),
        "export_device": "cpu",
        "export_legacy_format": False,
    }


def length_settings(config: dict[str, Any]) -> LengthSettings:
    """The training config's settings that change a sample's token count; a key the config
    leaves out takes LLaMA-Factory's default, as the training run will."""
    defaults = LengthSettings()
    return LengthSettings(
        template=config.get("template", defaults.template),
        image_max_pixels=int(config.get("image_max_pixels", LF_IMAGE_MAX_PIXELS)),
        image_min_pixels=int(config.get("image_min_pixels", LF_IMAGE_MIN_PIXELS)),
        video_max_pixels=int(config.get("video_max_pixels", defaults.video_max_pixels)),
        video_min_pixels=int(config.get("video_min_pixels", defaults.video_min_pixels)),
        video_fps=float(config.get("video_fps", defaults.video_fps)),
        video_maxlen=int(config.get("video_maxlen", defaults.video_maxlen)),
    )


def prepare(recipe_path: Path, paths: RunPaths, environ: Mapping[str, str], cwd: Path, dataset_name: str = "deepeyes_sft", strict: bool = False) -> Path:
    """Check settings, convert + validate the data, write the YAML(s); return the train YAML path."""
    for data in paths.data:
        if not data.exists():
            raise PrepareError(f"DATA_PATH={data}: no such file or directory")
    config = build_train_config(load_recipe(recipe_path), env_overrides(environ, cwd), paths, dataset_name)
    if paths.export_dir and config["finetuning_type"] != "lora":
        raise PrepareError("EXPORT_DIR merges a LoRA adapter; with full/freeze fine-tuning OUTPUT_DIR already holds the model")
    check_with_llamafactory(config)
    result = convert(
        ConvertOptions(
            inputs=paths.data,
            out=Path(config["dataset_dir"]),
            image_root=paths.image_root,
            dataset_name=dataset_name,
            model=Path(config["model_name_or_path"]),
            cutoff_len=int(config.get("cutoff_len", 2048)),
            length=length_settings(config),
            strict=strict,
            show_progress=True,
        )
    )
    totals = result.report["totals"]
    print(f"data: {totals['kept']} of {totals['read']} samples kept; report: {result.report_file}")
    train_yaml = paths.output_dir / TRAIN_YAML
    train_yaml.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if paths.export_dir:
        (paths.output_dir / EXPORT_YAML).write_text(yaml.safe_dump(export_config(config, paths.export_dir), sort_keys=False), encoding="utf-8")
    return train_yaml


@dataclass(frozen=True)
class PrepareArguments:
    recipe: str = field(metadata={"help": "LLaMA-Factory YAML holding the defaults"})
    data: list[str] = field(metadata={"help": "SFT data (seed records or ShareGPT, any layout the converter reads)"})
    output_dir: str = field(metadata={"help": f"training output directory (converted data goes to its {DATA_SUBDIR}/)"})
    image_root: str | None = field(default=None, metadata={"help": "base for relative image paths (default: each input's directory)"})
    export_dir: str | None = field(default=None, metadata={"help": "also write an export YAML merging the adapter into this directory"})
    dataset_name: str = field(default="deepeyes_sft", metadata={"help": "dataset name in dataset_info.json"})
    strict: bool = field(default=False, metadata={"help": "fail on any data problem instead of excluding the sample"})


DESCRIPTION = (
    "Prepare a cold-start SFT run for LLaMA-Factory: merge a recipe YAML with environment-variable overrides "
    "(MAX_SEQ_LENGTH, BATCH_SIZE, LEARNING_RATE, NUM_TRAIN_EPOCHS, GRADIENT_ACCUMULATION_STEPS, USE_PEFT, "
    "FINETUNING_TYPE, LORA_RANK, LORA_TARGET, FP16, BF16, FREEZE_VISION_TOWER, DEEPSPEED, MODEL_NAME_OR_PATH, "
    "MAX_SAMPLES, IMAGE_MAX_PIXELS, TEMPLATE, LOGGING_STEPS, SEED, USE_CPU), convert and validate the data, "
    f"and write {TRAIN_YAML} (and {EXPORT_YAML} with --export_dir) into the output directory. "
    "Relative paths are taken from the current directory. Normally called by cold_start/run_cold_start.sh."
)


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli([PrepareArguments], argv, prog="python -m deepeyes.data.sft_prepare", description=DESCRIPTION)
    cwd = Path.cwd()
    paths = RunPaths(
        data=[(cwd / p).resolve() for p in args.data],
        output_dir=(cwd / args.output_dir).resolve(),
        image_root=(cwd / args.image_root).resolve() if args.image_root else None,
        export_dir=(cwd / args.export_dir).resolve() if args.export_dir else None,
    )
    try:
        train_yaml = prepare(Path(args.recipe), paths, os.environ, cwd, args.dataset_name, args.strict)
    except (PrepareError, InputError, ValidationFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"LLaMA-Factory config: {train_yaml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
