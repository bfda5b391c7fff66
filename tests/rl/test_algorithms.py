"""Advantages and losses come from verl, applied to whole conversations with their masks."""

from __future__ import annotations

import torch

from deepeyes.rl import algorithms
from deepeyes.rl.config import TrainingConfig


def test_outcome_reward_sits_on_the_last_generated_token():
    mask = torch.tensor([[0, 1, 1, 0, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    rewards = algorithms.outcome_token_rewards(torch.tensor([2.0, -1.0, 5.0]), mask)
    assert rewards[0].tolist() == [0, 0, 0, 0, 2.0, 0, 0]
    assert rewards[1].tolist() == [0, -1.0, 0, 0, 0, 0, 0]
    assert rewards[2].sum() == 0  # nothing generated: nowhere to put the reward


def test_grpo_advantages_are_group_normalised_and_masked():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.float32)
    scores = torch.tensor([1.0, 0.0, 0.5, 0.5])
    advantages, _ = algorithms.compute_advantages("grpo", scores, mask, ["a", "a", "b", "b"], TrainingConfig())
    # Group a: scores 1 and 0 -> +/- 1/std; group b: equal scores -> zero advantage.
    std = torch.tensor([1.0, 0.0]).std()
    assert torch.allclose(advantages[0], torch.tensor([1, 1, 0]) * (0.5 / std), atol=1e-4)
    assert torch.allclose(advantages[1], torch.tensor([1, 0, 0]) * (-0.5 / std), atol=1e-4)
    assert torch.all(advantages[2:] == 0)
    assert torch.all(advantages[mask == 0] == 0)


def test_ppo_uses_gae_over_the_value_head():
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.float32)
    values = torch.tensor([[0.2, 0.4, 0.6, 9.0]])
    training = TrainingConfig(gamma=1.0, lam=1.0)
    _, returns = algorithms.compute_advantages("ppo", torch.tensor([1.0]), mask, ["a"], training, values)
    # gamma = lambda = 1: the return of every generated token is the final reward.
    assert torch.allclose(returns[0, :3], torch.ones(3), atol=1e-5)


def test_clipped_loss_limits_the_ratio():
    """With the ratio far above 1 + clip and a positive advantage, the clipped objective has no gradient."""
    training = TrainingConfig(ppo_clip_ratio=0.2, kl_coef=0.0)
    mask = torch.ones(1, 4)
    log_probs = torch.zeros(1, 4, requires_grad=True)
    parts = algorithms.policy_loss(
        algorithms.actor_config(training, rollout_n=2),
        training,
        algorithms.ForwardOutput(log_probs=log_probs, loss_mask=mask),
        old_log_probs=torch.full((1, 4), -1.0),  # ratio e ≈ 2.7 > 1.2
        advantages=torch.ones(1, 4),
        ref_log_probs=None,
        returns=None,
        old_values=None,
        minibatch_tokens=4,
        minibatch_size=1,
    )
    parts.total.backward()
    assert parts.metrics["actor/pg_clipfrac"] == 1.0
    assert torch.all(log_probs.grad == 0)
    assert abs(parts.metrics["actor/pg_loss"] + 1.2) < 1e-5  # -A * (1 + clip)
