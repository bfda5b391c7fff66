"""One local-engine RL step on a video row, with the tiny model.

The row's clip is decoded by the row reader, rolled out by the engine's HF policy (the video
through the Qwen2.5-VL processor), and trained on: the training rows carry the video's
``pixel_values_videos``, ``video_grid_thw`` and ``second_per_grid_ts`` exactly as generation
computed them, the loss is finite and the LoRA weights move.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from video_media import write_mp4

from deepeyes.agent import AgentConfig, AgentLoop
from deepeyes.paths import REPO_ROOT
from deepeyes.policies.hf import HFPolicy
from deepeyes.rl.config import load_rl_config
from deepeyes.rl.data import prompt_budget, run_prompts
from deepeyes.rl.local_engine import LocalTrainer
from deepeyes.wire import VIDEO_PAD

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"
N = 2


class AlternatingReward:
    """Scores the rollouts 1, 0, 1, 0, …: a group with a spread, so GRPO's advantages are not zero."""

    def score_batch(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"score": float(i % 2 == 0)} for i in range(len(payloads))]


def test_a_video_row_trains_with_the_video_inputs_generation_saw(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_mp4(tmp_path / "rl" / "clips" / "moving.mp4", count=6, fps=2)  # 3 s, 6 frames; 2 fps keeps all six
    row = {
        "data_source": "synthetic_video",
        "prompt": [{"role": "user", "content": "<video>\nWhich way does the square move?"}],
        "videos": [{"video": "clips/moving.mp4"}],
        "reward_model": {"ground_truth": "right", "style": "rule"},
        "extra_info": {"index": 0, "question": "Which way does the square move?"},
    }
    data = tmp_path / "rl" / "train.parquet"
    pq.write_table(pa.Table.from_pylist([row]), data)
    config = load_rl_config(
        DEFAULT_CONFIG,
        [f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null", f"data.rl_data_path={data}", "data.batch_size=1",
         f"rollout.n={N}", "rollout.temperature=1.0", "rollout.max_turns=1", "rollout.max_new_tokens=8", f"training.batch_size={N}",
         "training.gradient_accumulation_steps=1", "training.learning_rate=0.01", "training.kl_coef=0", f"output.dir={tmp_path / 'out'}"],
    )
    (prompt,) = run_prompts(config, config.data.rl_data_path, prompt_budget(config))
    torch.manual_seed(0)
    trainer = LocalTrainer(config, show_progress=False)
    trainer._load(None)
    trainer.agent = AgentLoop(None, AgentConfig(max_turns=1, use_tools=False))
    trainer.reward = AlternatingReward()

    scored = trainer._roll_out([prompt])
    assert [r.trajectory.videos for r in scored.rollouts] == [[{"source": str(prompt.videos[0]), "frames": 6}]] * N

    rows, owners = trainer._rows(scored)
    assert owners == list(range(N))
    processor = trainer.policy.processor
    generation = HFPolicy.from_model(trainer.policy.model, processor, max_pixels=trainer.max_pixels, min_pixels=trainer.min_pixels)
    seen = generation.encode(scored.rollouts[0].messages[:2])  # the prompt the first turn was generated from
    video_pad = processor.tokenizer.convert_tokens_to_ids(VIDEO_PAD)
    for built in rows:
        inputs = built.extra_inputs
        assert torch.equal(inputs["pixel_values_videos"], seen["pixel_values_videos"])
        assert torch.equal(inputs["video_grid_thw"], seen["video_grid_thw"])
        assert torch.equal(inputs["second_per_grid_ts"], seen["second_per_grid_ts"])
        grid = inputs["video_grid_thw"][0]
        assert grid[0] == 3  # six frames in temporal patches of two
        assert int((built.input_ids == video_pad).sum()) == int(grid.prod()) // 4  # 2x2 patches merge into one token
    # Temporal patches of two frames at the clip's 2 fps: one second each (absolute-time M-RoPE).
    assert rows[0].extra_inputs["second_per_grid_ts"].tolist() == [1.0]

    before = {name: p.detach().clone() for name, p in trainer.policy.model.named_parameters() if p.requires_grad}
    metrics = trainer._update(scored)
    assert math.isfinite(metrics["actor/pg_loss"]) and math.isfinite(metrics["actor/grad_norm"]) and metrics["actor/grad_norm"] > 0
    after = dict(trainer.policy.model.named_parameters())
    assert any(not torch.equal(before[name], after[name].detach()) for name in before)
