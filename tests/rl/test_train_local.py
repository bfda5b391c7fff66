"""The local engine end to end: train.py with the real sandbox, Redis and reward server.

A 2-step run on the tiny model (dynamic sampling on, as in the default config) writes
metrics, trajectories and checkpoints; resuming continues at step 3 from the saved adapter
and the next prompts; the SFT adapter is merged under the RL LoRA.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepeyes.paths import REPO_ROOT
from deepeyes.rl.checkpoint import list_checkpoints
from deepeyes.rl.config import ModelConfig, load_rl_config
from deepeyes.rl.local_engine import STREAM_FILE, LocalTrainer
from deepeyes.rl.policy_model import load_policy
from deepeyes.trajectory import read_jsonl

TRAIN = REPO_ROOT / "reinforcement_learning" / "train.py"
DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"


@pytest.fixture(scope="module")
def sft_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero weights, standing in for the cold-start output."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    adapter = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    path = tmp_path_factory.mktemp("sft-adapter")
    adapter.save_pretrained(path)
    return path


def _overrides(rl_sample_dir: Path, tool_config_file: Path, tiny_model_dir: Path, sft_adapter: Path, output: Path) -> list[str]:
    return [
        f"model.base_model={tiny_model_dir}",
        f"model.sft_lora_path={sft_adapter}",
        "model.sft_lora_required=true",
        f"data.rl_data_path={rl_sample_dir / 'rl' / 'train.parquet'}",
        f"tool.tool_manager_config={tool_config_file}",
        f"tool.search_cache_path={rl_sample_dir / 'image_search' / 'cache.json'}",
        f"evaluation.reward_config={REPO_ROOT / 'reinforcement_learning' / 'evaluation_server' / 'reward_config.yaml'}",
        f"output.dir={output}",
        "data.batch_size=2",
        "rollout.n=2",
        "rollout.max_turns=2",
        "rollout.max_new_tokens=32",
        "rollout.concurrency=4",
        "training.batch_size=2",
        "training.gradient_accumulation_steps=2",
        "trainer.total_steps=2",
        "trainer.eval_steps=2",
        "trainer.eval_prompts=1",
        "trainer.eval_n=2",
        "output.save_steps=1",
        "output.save_total_limit=2",
        "algorithm.filter_groups.max_num_gen_batches=2",
    ]


def test_sft_adapter_is_merged_and_rl_lora_starts_as_identity(tiny_model_dir, sft_adapter):
    from peft import PeftModel
    from transformers import Qwen2_5_VLForConditionalGeneration

    policy = load_policy(ModelConfig(lora_rank=4), tiny_model_dir, sft_adapter)
    ids = torch.tensor([[1, 50, 60, 70, 80, 90]])
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    merged = PeftModel.from_pretrained(Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir), str(sft_adapter)).merge_and_unload().eval()
    policy.model.eval()
    with torch.no_grad():
        with policy.reference_context():
            reference = policy.model(input_ids=ids).logits
        current = policy.model(input_ids=ids).logits
        assert torch.allclose(reference, merged(input_ids=ids).logits, atol=1e-5)
        assert not torch.allclose(reference, base(input_ids=ids).logits, atol=1e-3)
    assert torch.allclose(current, reference, atol=1e-6)  # fresh LoRA: policy = reference at the start
    trainable = [name for name, p in policy.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name and "language_model" in name for name in trainable)


@pytest.mark.slow
@pytest.mark.redis
def test_two_step_run_then_resume(tmp_path, rl_sample_dir, tool_config_file, tiny_model_dir, sft_adapter):
    output = tmp_path / "run"
    overrides = _overrides(rl_sample_dir, tool_config_file, tiny_model_dir, sft_adapter, output)
    argv = [sys.executable, str(TRAIN), "--config", str(DEFAULT_CONFIG), "--no-progress"]
    for override in overrides:
        argv += ["--set", override]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "finished 2 steps" in result.stdout
    log = result.stderr
    for service in ("reward-server", "redis-server", "sandbox"):
        assert f"started {service}" in log and f"stopped {service}" in log

    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]  # held-in evaluation before training, then each step
    for record in records[1:]:
        for key in ("critic/score/mean", "critic/score/std", "reward/accuracy", "tools/code_call_rate", "tools/search_call_rate",
                    "tools/image_search_call_rate", "tools/invalid_call_rate", "rollout/turns", "rollout/response_tokens",
                    "timing_s/gen", "timing_s/reward", "timing_s/update_actor", "timing_s/step",
                    "timing_s/agent_loop/generate_sequences/mean", "timing_s/agent_loop/tool_calls/mean",
                    "filter_groups/kept", "filter_groups/dropped", "filter_groups/gen_rounds"):
            assert key in record, key
        assert 1 <= record["filter_groups/gen_rounds"] <= 2
        if record["filter_groups/kept"]:  # a step whose every group was constant makes no update
            assert record["actor/trained_tokens"] > 0 and "actor/grad_norm" in record
    assert "eval/critic/score/mean" in records[0] and "eval/critic/score/mean" in records[2]
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))

    trajectories = read_jsonl(output / "trajectories.jsonl")
    groups = {step: {t.metadata["prompt_uid"] for t in trajectories if t.metadata["step"] == step} for step in (1, 2)}
    for step, record in zip((1, 2), records[1:], strict=True):
        assert len(groups[step]) == record["filter_groups/kept"] + record["filter_groups/dropped"]
    assert len(trajectories) == 2 * sum(len(g) for g in groups.values())
    assert all(t.reward is not None and "score" in t.reward and t.metadata["filter_groups"] in ("kept", "dropped") for t in trajectories)

    checkpoints = list_checkpoints(output)
    assert [c.name for c in checkpoints] == ["step-000001", "step-000002"]
    adapter_1 = load_file(checkpoints[0] / "policy" / "adapter_model.safetensors")
    adapter_2 = load_file(checkpoints[1] / "policy" / "adapter_model.safetensors")
    assert adapter_1.keys() == adapter_2.keys() and all("lora_" in k for k in adapter_1)
    # Whether weights moved depends on the sampled rewards (equal rewards in a group: zero advantage);
    # the direction of an update is tested with fixed rewards in test_update_moves_towards_the_rewarded_turn.
    # (Without a signal the weights still move: AdamW's decoupled weight decay and earlier steps' moments.)
    moved = any(not torch.equal(adapter_1[k], adapter_2[k]) for k in adapter_1)
    if records[2].get("actor/advantage_abs_max", 0) > 0 or records[2].get("actor/kl_loss", 0) > 0:
        assert moved
    # Each checkpoint knows how many prompts its run drew (more than 2 per step when groups were refilled).
    drawn = json.loads((checkpoints[1] / STREAM_FILE).read_text())["position"]
    assert drawn == len(groups[1]) + len(groups[2])

    # Resume: continue to step 3 from the step-2 checkpoint.
    config = load_rl_config(DEFAULT_CONFIG, [*overrides, "trainer.total_steps=3"])
    trainer = LocalTrainer(config, resume="auto", show_progress=False)
    assert trainer.run().steps_done == 3
    steps = [json.loads(line)["step"] for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3]
    assert [c.name for c in list_checkpoints(output)] == ["step-000002", "step-000003"]
    # One optimizer step per RL step that updated: a restored optimizer has taken them all, a fresh one 1.
    updates = sum(1 for line in (output / "metrics.jsonl").read_text().splitlines() if "actor/grad_norm" in json.loads(line))
    optimizer = torch.load(output / "checkpoints" / "step-000003" / "optimizer.pt", weights_only=False)
    assert {float(s["step"]) for s in optimizer["state"].values()} == ({float(updates)} if updates else set())
    state = json.loads((output / "checkpoints" / "step-000003" / "trainer_state.json").read_text())
    assert state["step"] == 3
    resumed = read_jsonl(output / "trajectories.jsonl")
    assert {t.metadata["step"] for t in resumed} == {1, 2, 3}
    # Step 3 rolled out the prompts after those drawn before the checkpoint: none again (at most 12 drawn: one epoch).
    third = {t.metadata["prompt_uid"] for t in resumed if t.metadata["step"] == 3}
    assert third and not third & (groups[1] | groups[2])
    assert json.loads((output / "checkpoints" / "step-000003" / STREAM_FILE).read_text())["position"] == drawn + len(third)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_update_moves_towards_the_rewarded_turn(tmp_path, tiny_model_dir, algorithm):
    """Two answers to one prompt, rewarded 1 and 0: the update raises the first's likelihood and lowers the second's."""
    from PIL import Image

    from deepeyes.agent import Rollout
    from deepeyes.chat import Message
    from deepeyes.prompts import system_prompt, user_prompt
    from deepeyes.rl import algorithms
    from deepeyes.rl.local_engine import _Scored
    from deepeyes.rl.masking import collate, tokenize_conversation
    from deepeyes.trajectory import Trajectory

    config = load_rl_config(
        DEFAULT_CONFIG,
        [f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null", "training.learning_rate=0.01", "training.kl_coef=0",
         "rollout.n=2", "training.batch_size=2", "training.gradient_accumulation_steps=1", f"output.dir={tmp_path}",
         f"algorithm={algorithm}"],
    )
    trainer = LocalTrainer(config, show_progress=False)
    trainer._load(None)
    image = Image.new("RGB", (64, 64), "green")
    turns = {"good": "<think>Count them.</think>\n<answer>4</answer>", "bad": "<think>Guess.</think>\n<answer>7</answer>"}

    def conversation(text: str) -> list[Message]:
        return [Message("system", system_prompt()), Message("user", user_prompt("How many?", 1), [image]), Message("assistant", text)]

    rollouts = [
        Rollout(Trajectory(id=name, question="How many?", images=["<in-memory>"], metadata={"prompt_uid": "p"}), conversation(text))
        for name, text in turns.items()
    ]
    scored = _Scored(rollouts, [{"score": 1.0}, {"score": 0.0}], 0.0, 0.0)

    def likelihood(text: str) -> float:
        tokenized = tokenize_conversation(
            trainer.policy.processor, conversation(text), min_pixels=trainer.min_pixels, max_pixels=trainer.max_pixels
        )
        with torch.no_grad():
            batch = collate([tokenized], trainer.policy.processor.tokenizer.pad_token_id)
            out = algorithms.forward(trainer.policy.model, batch, distribution=trainer.distribution)
        return float((out.log_probs * out.loss_mask).sum())

    before = {name: likelihood(text) for name, text in turns.items()}
    for _ in range(2):  # lr 0.01 with Adam on a random model: a third step can overshoot
        metrics = trainer._update(scored)
    after = {name: likelihood(text) for name, text in turns.items()}
    assert metrics["actor/advantage_abs_max"] > 0
    assert ("critic/vf_loss" in metrics) == (algorithm == "ppo")
    # The rewarded answer gains likelihood relative to the other one.
    assert after["good"] - before["good"] > after["bad"] - before["bad"]
    if algorithm == "grpo":  # symmetric group advantages: one goes up, the other down
        assert after["good"] > before["good"] and after["bad"] < before["bad"]
