"""A short RL run from a fixed checkpoint and seed raises the held-in reward.

The policy is the tiny model restricted to four candidate answers to one held-in prompt:
each step samples ``rollout.n`` of them in proportion to the model's own probability of
writing them (under the rollout temperature), scores them with the real reward function,
and runs the engine's real update on the sampled ids. The held-in reward is then the
*exact* expected reward, Σ p(answer) · reward(answer), not a sampled estimate, so the test
measures learning without sampling noise; the seed fixes which answers each step samples.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import torch
from PIL import Image

from deepeyes.agent import Rollout
from deepeyes.chat import Message
from deepeyes.paths import REPO_ROOT
from deepeyes.policies.base import Generation
from deepeyes.policies.hf import HFPolicy
from deepeyes.prompts import system_prompt, user_prompt
from deepeyes.rewards import score_response
from deepeyes.rl import algorithms
from deepeyes.rl.config import load_rl_config
from deepeyes.rl.local_engine import LocalTrainer, _Scored
from deepeyes.rl.masking import collate
from deepeyes.rl.sampled import turn_row
from deepeyes.trajectory import Trajectory
from deepeyes.wire import IM_END

DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"
TRUTH = "4"
ANSWERS = ("4", "7", "5", "9")
STEPS = 4
N = 8


def _prefix() -> list[Message]:
    image = Image.new("RGB", (64, 64), "green")
    return [Message("system", system_prompt()), Message("user", user_prompt("How many circles are there?", 1), [image])]


def test_short_rl_run_raises_held_in_reward(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = load_rl_config(
        DEFAULT_CONFIG,
        [f"model.base_model={tiny_model_dir}", "model.sft_lora_path=null", "training.learning_rate=0.001", "training.kl_coef=0",
         f"rollout.n={N}", "rollout.temperature=1.0", f"training.batch_size={N}", "training.gradient_accumulation_steps=1",
         f"output.dir={tmp_path}", "training.seed=0"],
    )
    torch.manual_seed(0)
    trainer = LocalTrainer(config, show_progress=False)
    trainer._load(None)
    processor = trainer.policy.processor
    tokenizer = processor.tokenizer
    prefix = _prefix()
    hf = HFPolicy.from_model(trainer.policy.model, processor, max_pixels=trainer.max_pixels, min_pixels=trainer.min_pixels)
    prompt_ids = hf.generate_batch([prefix])[0].prompt_token_ids
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    texts = [f"<think>I count them.</think>\n<answer>{answer}</answer>" for answer in ANSWERS]
    candidates = [
        Generation(text, token_ids=[*tokenizer.encode(text, add_special_tokens=False), im_end], prompt_token_ids=prompt_ids, finish_reason="stop")
        for text in texts
    ]
    rewards = torch.tensor([float(score_response(text, TRUTH)["score"]) for text in texts])
    assert rewards.tolist() == [1.0, 0.0, 0.0, 0.0]  # the real reward: only the right answer pays
    rows = [turn_row(processor, prefix, g, min_pixels=trainer.min_pixels, max_pixels=trainer.max_pixels) for g in candidates]

    def probabilities() -> torch.Tensor:
        with torch.no_grad():
            out = algorithms.forward(trainer.policy.model.eval(), collate(rows, tokenizer.pad_token_id), distribution=trainer.distribution)
        return torch.softmax((out.log_probs * out.loss_mask).sum(dim=1), dim=0)

    generator = torch.Generator().manual_seed(0)
    curve = [float(probabilities() @ rewards)]
    for step in range(STEPS):
        picks = torch.multinomial(probabilities(), N, replacement=True, generator=generator).tolist()
        rollouts = [
            Rollout(Trajectory(id=f"{step}-{i}", question="q", images=["<in-memory>"], metadata={"prompt_uid": f"p{step}"}),
                    [*prefix, Message("assistant", candidates[k].text)])
            for i, k in enumerate(picks)
        ]
        scored = _Scored(rollouts, [{"score": float(rewards[k])} for k in picks], 0.0, 0.0, [[(2, candidates[k])] for k in picks])
        trainer._update(scored)
        curve.append(float(probabilities() @ rewards))
    # Robust, not loose: the expected reward must rise by a clear margin, and not by luck of one step.
    assert curve[-1] > curve[0] + 0.2, curve
    assert sum(b > a for a, b in pairwise(curve)) >= STEPS - 1, curve
