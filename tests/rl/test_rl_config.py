"""The RL config: the shipped files load, unknown keys fail naming the key, overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepeyes.config import ConfigError
from deepeyes.paths import REPO_ROOT
from deepeyes.rl.config import load_rl_config
from deepeyes.rl.data import PromptSchedule, load_prompts

CONFIG_DIR = REPO_ROOT / "reinforcement_learning" / "configs"


@pytest.mark.parametrize("name", ["deepeyes_rl.yaml", "deepeyes_rl_cluster.yaml"])
def test_shipped_configs_load(name: str):
    config = load_rl_config(CONFIG_DIR / name)
    assert config.algorithm.name in ("grpo", "ppo")
    assert len(config.evaluation.reward_weights) == 3


def test_default_config_is_the_small_local_run():
    config = load_rl_config(CONFIG_DIR / "deepeyes_rl.yaml")
    assert config.trainer.engine == "local" and config.model.device == "cpu"
    assert config.model.base_model.endswith("tiny-qwen2.5-vl") and config.trainer.total_steps <= 10


def test_unknown_keys_fail_naming_the_key(tmp_path: Path):
    path = tmp_path / "rl.yaml"
    path.write_text("training:\n  learning_rate: 1.0e-6\n  ppo_clip: 0.2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="training.ppo_clip"):
        load_rl_config(path)
    path.write_text("rollout:\n  n: 2\nroll_out: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="roll_out"):
        load_rl_config(path)


def test_overrides_are_parsed_as_yaml_and_checked(tmp_path: Path):
    path = tmp_path / "rl.yaml"
    path.write_text("algorithm: grpo\n", encoding="utf-8")
    config = load_rl_config(path, ["rollout.n=8", "algorithm=ppo", "tool.code_sandbox_ports=[8001, 8002]", "evaluation.server_url=http://127.0.0.1:5000"])
    assert config.rollout.n == 8 and config.algorithm.name == "ppo" and config.tool.code_sandbox_ports == [8001, 8002]
    with pytest.raises(ConfigError, match="algorithm"):
        load_rl_config(path, ["algorithm=dpo"])
    with pytest.raises(ConfigError, match="trainer.steps"):
        load_rl_config(path, ["trainer.steps=3"])
    with pytest.raises(ConfigError, match="key=value"):
        load_rl_config(path, ["rollout.n"])


def test_prompts_and_schedule(rl_sample_dir: Path):
    prompts = load_prompts(rl_sample_dir / "rl" / "train.parquet")
    assert all(p.images and p.images[0].is_file() and p.ground_truth and p.question for p in prompts)
    schedule = PromptSchedule(prompts, batch_size=2, seed=3)
    first_epoch = [p.uid for step in range(schedule.steps_per_epoch) for p in schedule.batch(step)]
    assert len(set(first_epoch)) == len(first_epoch)  # no prompt twice within an epoch
    again = PromptSchedule(prompts, batch_size=2, seed=3)
    assert [p.uid for p in again.batch(5)] == [p.uid for p in schedule.batch(5)]  # resumable order


def test_a_configured_reward_server_must_serve_the_configured_weights(reward_url: str, tmp_path: Path):
    from deepeyes.rl.config import RLSetupError
    from deepeyes.rl.services import reward_server

    path = tmp_path / "rl.yaml"
    path.write_text(f"evaluation:\n  server_url: {reward_url}\n", encoding="utf-8")
    with reward_server(load_rl_config(path), tmp_path) as url:  # default weights: accepted, nothing started
        assert url == reward_url
    mismatched = load_rl_config(path, ["evaluation.reward_weights=[0.6, 0.2, 0.2]"])
    with pytest.raises(RLSetupError, match="weights"), reward_server(mismatched, tmp_path):
        pass


def test_rl_starts_from_what_cold_start_wrote_adapter_or_full_model(tmp_path: Path):
    """Cold start writes a LoRA adapter (published recipes) or a whole model (the tiny default's
    full fine-tuning) to the same place; RL merges the first and starts from the second."""
    path = tmp_path / "rl.yaml"
    path.write_text("model:\n  base_model: base\n  sft_lora_path: sft\n  sft_lora_required: false\n", encoding="utf-8")
    sft = tmp_path / "sft"
    config = load_rl_config(path, [f"model.base_model={tmp_path / 'base'}", f"model.sft_lora_path={sft}"])
    assert config.initial_model() == (tmp_path / "base", None)  # nothing there yet: the base model
    sft.mkdir()
    (sft / "config.json").write_text("{}", encoding="utf-8")
    assert config.initial_model() == (sft, None)
    (sft / "adapter_config.json").write_text("{}", encoding="utf-8")
    assert config.initial_model() == (tmp_path / "base", sft)


def test_rollouts_and_the_quickstart_evaluations_can_write_the_longest_trained_turn(sample_dir: Path, tiny_model_dir: Path):
    """A turn cut by max_new_tokens is never a valid action: the budget must cover every SFT turn."""
    import json
    import re

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = json.loads((sample_dir / "sft" / "sharegpt.json").read_text(encoding="utf-8"))
    longest = max(len(tokenizer(message["content"])["input_ids"]) + 1  # + the end-of-turn token
                  for record in records for message in record["messages"] if message["role"] == "assistant")
    rollout_budget = load_rl_config(REPO_ROOT / "reinforcement_learning/configs/deepeyes_rl.yaml").rollout.max_new_tokens
    quickstart_budget = int(re.search(r"MAX_NEW_TOKENS=(\d+)", (REPO_ROOT / "scripts/quickstart.sh").read_text()).group(1))
    assert longest <= rollout_budget and longest <= quickstart_budget, (longest, rollout_budget, quickstart_budget)
