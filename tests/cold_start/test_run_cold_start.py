"""End to end: ``cold_start/run_cold_start.sh`` on the tiny model, plus its fail-fast paths.

One short real run (3 samples, 2 epochs, batch 1) is shared by the checks: LLaMA-Factory's
logged loss goes down, the LoRA adapter is written and loads into the agent loop's
``HFPolicy``, and ``EXPORT_DIR`` yields a merged model that loads without the adapter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sft_fixtures import seed_records, write_fixture_images

from deepeyes.chat import Message
from deepeyes.paths import REPO_ROOT
from deepeyes.prompts import system_prompt, user_prompt

SCRIPT = REPO_ROOT / "cold_start" / "run_cold_start.sh"


def _run(env_overrides: dict[str, str], cwd: Path, script: Path = SCRIPT, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_PATH", "MODEL_NAME_OR_PATH", "OUTPUT_DIR", "EXPORT_DIR", "RECIPE")}
    env.update(env_overrides)
    return subprocess.run(["bash", str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:

    root = tmp_path_factory.mktemp("cold_start")
    data = root / "data"
    write_fixture_images(data)
    (data / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seed_records()))
    elsewhere = root / "somewhere_else"  # the script must not depend on the current directory
    elsewhere.mkdir()
    result = _run(
        {
            "MODEL_NAME_OR_PATH": str(tiny_model_dir),
            "DATA_PATH": "../data/seed.jsonl",
            "OUTPUT_DIR": "../run",
            "EXPORT_DIR": "../merged",
            # The published LoRA route (adapter + export); the tiny default recipe trains fully.
            "FINETUNING_TYPE": "lora",
            "LORA_TARGET": "all",
            "LORA_RANK": "16",
            "NUM_TRAIN_EPOCHS": "2",
            "LOGGING_STEPS": "1",
        },
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"run": root / "run", "merged": root / "merged", "data": data}


@pytest.mark.slow
def test_logged_loss_decreases(trained: dict[str, Path]) -> None:
    losses = [json.loads(line)["loss"] for line in (trained["run"] / "trainer_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(losses) == 6  # 3 samples x 2 epochs at batch 1, one log line per step
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2


@pytest.mark.slow
def test_adapter_and_the_yaml_it_was_trained_with_are_written(trained: dict[str, Path]) -> None:
    run = trained["run"]
    assert (run / "adapter_config.json").is_file()
    assert (run / "adapter_model.safetensors").stat().st_size > 0
    config = yaml.safe_load((run / "llamafactory_train.yaml").read_text())
    assert (config["finetuning_type"], config["num_train_epochs"], config["logging_steps"]) == ("lora", 2.0, 1)
    assert config["output_dir"] == str(run)
    report = json.loads((run / "sft_data" / "validation_report.json").read_text())
    assert report["totals"] == {"read": 3, "kept": 3, "excluded": 0}


def _conversation(data: Path) -> list[Message]:
    from PIL import Image

    image = Image.open(data / "images" / "q3.png").convert("RGB")
    return [Message("system", system_prompt()), Message("user", user_prompt("What colour is the background?"), [image])]


@pytest.mark.slow
def test_adapter_loads_into_hf_policy_and_changes_the_model(trained: dict[str, Path], tiny_model_dir: Path) -> None:
    import torch

    from deepeyes.policies.hf import HFPolicy

    conversation = _conversation(trained["data"])
    tuned_policy = HFPolicy(tiny_model_dir, adapter_path=trained["run"], max_new_tokens=8)
    base_policy = HFPolicy(tiny_model_dir, max_new_tokens=8)
    assert tuned_policy.generate(conversation).completion_tokens > 0
    # Six steps need not change a random model's greedy text; they must change its distribution.
    inputs = base_policy.encode(conversation)
    with torch.no_grad():
        tuned = tuned_policy.model(**inputs).logits[0, -1]
        base = base_policy.model(**inputs).logits[0, -1]
    assert not torch.allclose(tuned, base, atol=1e-3)


@pytest.mark.slow
def test_export_merges_the_adapter_into_a_standalone_model(trained: dict[str, Path], tiny_model_dir: Path) -> None:
    from deepeyes.policies.hf import HFPolicy

    merged = trained["merged"]
    assert (merged / "config.json").is_file() and list(merged.glob("*.safetensors"))
    conversation = _conversation(trained["data"])
    from_merged = HFPolicy(merged, max_new_tokens=8).generate(conversation)
    from_adapter = HFPolicy(tiny_model_dir, adapter_path=trained["run"], max_new_tokens=8).generate(conversation)
    assert from_merged.text == from_adapter.text


def test_bad_data_path_fails_fast_with_a_clear_message(tmp_path: Path, tiny_model_dir: Path) -> None:
    result = _run({"DATA_PATH": str(tmp_path / "missing.jsonl"), "MODEL_NAME_OR_PATH": str(tiny_model_dir), "OUTPUT_DIR": str(tmp_path / "run")}, tmp_path)
    assert result.returncode != 0
    assert f"DATA_PATH={tmp_path / 'missing.jsonl'}: no such file or directory" in result.stderr
    assert not (tmp_path / "run" / "llamafactory_train.yaml").exists()


@pytest.mark.parametrize(
    ("make_dir", "message"),
    [(False, "no such file or directory, and not a hub name"), (True, "not a local model directory")],
)
def test_bad_model_path_fails_fast_with_a_clear_message(tmp_path: Path, seed_file: Path, make_dir: bool, message: str) -> None:
    if make_dir:  # a folder, but no checkpoint in it
        (tmp_path / "no-model").mkdir()
    result = _run({"DATA_PATH": str(seed_file), "MODEL_NAME_OR_PATH": str(tmp_path / "no-model"), "OUTPUT_DIR": str(tmp_path / "run")}, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr and str(tmp_path / "no-model") in result.stderr
    assert not (tmp_path / "run" / "llamafactory_train.yaml").exists()


def test_missing_venv_says_to_run_setup(tmp_path: Path) -> None:
    fake_root = tmp_path / "checkout"
    (fake_root / "cold_start").mkdir(parents=True)
    shutil.copy(SCRIPT, fake_root / "cold_start" / "run_cold_start.sh")
    result = _run({}, tmp_path, script=fake_root / "cold_start" / "run_cold_start.sh")
    assert result.returncode == 1
    assert "run bash setup.sh" in result.stderr
