"""One config, two engines, one meaning: the rows and images each engine trains on, the errors
for a bad row, the reward on every route, the loggers, and the check before verl starts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import verl.trainer.config as verl_config
from hydra import compose, initialize_config_dir

from deepeyes.config import to_dict
from deepeyes.paths import REPO_ROOT
from deepeyes.rl import verl_launch
from deepeyes.rl.config import RLConfig, RLSetupError, load_rl_config
from deepeyes.rl.data import RLDataError, RLPrompt, prompt_budget, read_row, run_prompts

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"


def _config(tmp_path: Path, tiny_model_dir: Path, data: Path, tool_config_file: Path, *extra: str) -> RLConfig:
    return load_rl_config(
        DEFAULT_CONFIG,
        [
            "trainer.engine=verl",
            f"model.base_model={tiny_model_dir}",
            "model.sft_lora_path=null",
            f"data.rl_data_path={data}",
            f"tool.tool_manager_config={tool_config_file}",
            "tool.search_cache_path=null",
            f"output.dir={tmp_path / 'out'}",
            *extra,
        ],
    )


def _moved_rows(rl_sample_dir: Path, folder: Path, count: int = 6) -> tuple[Path, list[dict]]:
    """The first ``count`` sample rows in a parquet far from their images (relative paths the
    folder guesses cannot find: only ``data.image_root`` can)."""
    rows = pq.read_table(rl_sample_dir / "rl" / "train.parquet").to_pylist()[:count]
    path = folder / "elsewhere" / "rl" / "train.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, rows


def _key(prompt: RLPrompt) -> tuple:
    return (prompt.uid, prompt.question, prompt.images, prompt.ground_truth, prompt.data_source, prompt.sample_index, prompt.metadata)


def test_a_config_with_image_root_trains_the_same_rows_on_both_engines(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file):
    from transformers import AutoProcessor
    from verl.utils.dataset.rl_dataset import RLHFDataset

    data, rows = _moved_rows(rl_sample_dir, tmp_path)
    config = _config(tmp_path, tiny_model_dir, data, tool_config_file, f"data.image_root={rl_sample_dir}")

    # The local engine's prompts ...
    local = run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    assert len(local) == len(rows) and all(image.is_file() and image.is_relative_to(rl_sample_dir) for p in local for image in p.images)

    # ... and what our agent loop reads from the items verl's own dataset makes of the launch's copies.
    paths = verl_launch.VerlPaths.plan(config)
    verl_launch.prepare(config, paths)
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=verl_launch.build_overrides(config, paths, "http://127.0.0.1:1"))
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    dataset = RLHFDataset(data_files=[str(f) for f in paths.train_files], tokenizer=processor.tokenizer, config=composed.data, processor=processor)
    verl = [read_row(dataset[i], f"verl item {i}") for i in range(len(dataset))]
    assert sorted(map(_key, verl)) == sorted(map(_key, local))


def test_a_missing_image_stops_both_engines_naming_the_file_and_row(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file):
    data, rows = _moved_rows(rl_sample_dir, tmp_path)
    config = _config(tmp_path, tiny_model_dir, data, tool_config_file)  # no data.image_root: the guesses fail
    message = rf"{re.escape(str(data))}: row 0: image '{re.escape(rows[0]['images'][0]['image'])}' not found under .*data\.image_root"
    with pytest.raises(RLDataError, match=message):
        run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    with pytest.raises(RLDataError, match=message):
        verl_launch.prepare(config, verl_launch.VerlPaths.plan(config))
    assert not (tmp_path / "out" / "verl" / "data").exists()  # nothing was copied for verl
    # Inside verl, an item whose file went missing after the launch: the same reader, the same error.
    item = {
        "raw_prompt": [{"role": "user", "content": [{"type": "image", "image": str(tmp_path / "gone.png")}, {"type": "text", "text": "How many?"}]}],
        "reward_model": {"ground_truth": "3"},
        "extra_info": {"index": 4},
    }
    with pytest.raises(RLDataError, match=r"verl item 4: image '.*gone\.png' not found$"):
        read_row(item, "verl item 4")


def test_a_missing_ground_truth_stops_both_engines_naming_the_file_and_row(tmp_path, tiny_model_dir, rl_sample_dir, tool_config_file):
    rows = pq.read_table(rl_sample_dir / "rl" / "train.parquet").to_pylist()[:4]
    rows[2]["reward_model"] = {"style": "rule", "ground_truth": None}
    data = tmp_path / "rl" / "train.parquet"
    data.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), data)
    config = _config(tmp_path, tiny_model_dir, data, tool_config_file, f"data.image_root={rl_sample_dir}")
    message = rf"{re.escape(str(data))}: row 2: no reward_model.ground_truth"
    with pytest.raises(RLDataError, match=message):
        run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    with pytest.raises(RLDataError, match=message):
        verl_launch.prepare(config, verl_launch.VerlPaths.plan(config))
    with pytest.raises(RLDataError, match="verl item 2: no reward_model.ground_truth"):
        read_row({"raw_prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": ""}}, "verl item 2")


def _train_main(monkeypatch):
    """``reinforcement_learning/train.py``'s ``main``, imported in this process (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("deepeyes_rl_train", REPO_ROOT / "reinforcement_learning" / "train.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "deepeyes_rl_train", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.main


def test_the_verl_engine_on_the_default_config_stops_before_launching_and_names_the_cpu_recipe(tmp_path, capsys, monkeypatch):
    """The default config is a CPU config whose verl section names vLLM: verl would stop deep in its
    start-up (``vllm version None not supported``); train.py stops first, with nothing started."""
    code = _train_main(monkeypatch)(["--config", str(DEFAULT_CONFIG), "--set", "trainer.engine=verl", "--set", f"output.dir={tmp_path / 'out'}"])
    assert code == 2
    error = capsys.readouterr().err
    assert "verl.rollout_backend=vllm needs a GPU but model.device is cpu" in error
    assert "reinforcement_learning/configs/deepeyes_rl_verl_cpu.yaml" in error and "verl.rollout_backend=hf" in error
    assert not (tmp_path / "out").exists()  # no reward server, no prepared files


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.device=cuda", "verl.rollout_backend=vllm"], "the vllm package is not installed"),
        (["model.device=cuda", "verl.rollout_backend=hf"], "runs on CPU only"),
        (["verl.rollout_backend=hf", "trainer.loggers=[console,tensorbord]"], r"trainer.loggers: unknown logger\(s\) \['tensorbord'\]"),
    ],
)
def test_a_config_verl_cannot_run_here_is_refused_before_anything_starts(overrides, message):
    with pytest.raises(RLSetupError, match=message):
        verl_launch.check_launchable(load_rl_config(DEFAULT_CONFIG, ["trainer.engine=verl", *overrides]))
    verl_launch.check_launchable(load_rl_config(DEFAULT_CONFIG, ["trainer.engine=verl", "verl.rollout_backend=hf"]))


def test_loggers_are_verls_tracking_backends_on_both_engines(tmp_path, monkeypatch):
    """``trainer.loggers`` with wandb (offline): the local engine's step logger drives verl's own
    ``Tracking``, as verl's trainer does with the same list, and ``metrics.jsonl`` stays flat."""
    from deepeyes.rl.metrics import StepLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("TENSORBOARD_DIR", raising=False)
    loggers = ["console", "tensorboard", "wandb", "file"]
    config = load_rl_config(DEFAULT_CONFIG, [f"trainer.loggers=[{','.join(loggers)}]", f"output.dir={tmp_path}"])
    run = tmp_path / "run"
    writer = StepLogger(run, config.trainer.loggers, config.trainer.project_name, config.trainer.experiment_name, to_dict(config))
    records = [{"critic/score/mean": 0.25, "tools/calls_per_trajectory": 1.5}, {"critic/score/mean": 0.5, "tools/calls_per_trajectory": 1.0}]
    for step, record in enumerate(records, start=1):
        writer.write(step, record)
    writer.close()

    assert [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] == [{"step": s, **r} for s, r in enumerate(records, 1)]
    assert [json.loads(line) for line in (run / "tracking.jsonl").read_text().splitlines()] == [{"step": s, "data": r} for s, r in enumerate(records, 1)]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert "TENSORBOARD_DIR" not in os.environ  # the run folder was set for verl's backends only

    paths = verl_launch.VerlPaths.plan(config)
    overrides = verl_launch.build_overrides(config, paths, "http://127.0.0.1:1")
    assert f"trainer.logger=[{','.join(loggers)}]" in overrides
    assert f"trainer.project_name={config.trainer.project_name}" in overrides
    assert verl_launch.environment(config, paths)["VERL_FILE_LOGGER_PATH"] == str(paths.root / "tracking.jsonl")
