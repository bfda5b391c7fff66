"""The RL mathematics, taken from verl: advantages, the clipped policy loss, KL and value loss.

Nothing here reimplements an estimator or a loss — GRPO's group advantage, GAE, the PPO
clipped objective, the KL estimators, the value loss and the token aggregation are all
``verl.trainer.ppo.core_algos`` — so the local engine optimises exactly what verl's
trainer optimises on a cluster. What this module adds is the shape work: per-token
tensors of whole conversations ("responses" in verl's terms, with observation tokens
masked out) and the outcome reward placed on each trajectory's last generated token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo import core_algos
from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits
from verl.workers.config import ActorConfig

from deepeyes.rl.config import TrainingConfig


@dataclass
class ForwardOutput:
    """Per-token quantities for positions 1..L-1 of each row (the token each position predicts)."""

    log_probs: torch.Tensor  # (B, L-1)
    loss_mask: torch.Tensor  # (B, L-1) float
    values: torch.Tensor | None = None  # (B, L-1), PPO only
    #: Entropy of the (temperature-scaled, suppression-masked) next-token distribution, detached.
    entropy: torch.Tensor | None = None  # (B, L-1)


_SUPPRESSED_LOGIT = -1e9


@dataclass(frozen=True)
class SamplingDistribution:
    """What turns logits into the distribution tokens were sampled from.

    verl scores with ``logits / temperature`` (its actor divides by the rollout
    temperature); tokens ``generate`` never samples (``generation_config.suppress_tokens``)
    get probability 0 here too, so old, current and reference log-probs all describe the
    sampling distribution. ``temperature`` must be > 0.
    """

    temperature: float = 1.0
    suppressed_ids: tuple[int, ...] = ()

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float() / self.temperature
        if self.suppressed_ids:
            # A finite floor, not -inf: prompt positions can hold these tokens (image pads),
            # and -inf there would turn masked-out terms into NaN (0 · -inf). exp(-1e9) is 0.
            logits = logits.clone()
            logits[..., list(self.suppressed_ids)] = _SUPPRESSED_LOGIT
        return logits


def forward(
    model: Any,
    batch: dict[str, torch.Tensor],
    value_head: torch.nn.Module | None = None,
    distribution: SamplingDistribution | None = None,
) -> ForwardOutput:
    """Log-probabilities of each next token under ``model`` (and values when a head is given).

    Shapes: every output is (B, L-1) for a batch of (B, L) ``input_ids``; position t scores
    token t+1. ``distribution`` defaults to temperature 1 with nothing suppressed.
    """
    distribution = distribution or SamplingDistribution()
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in batch.items() if key != "loss_mask"}
    output = model(**inputs, output_hidden_states=value_head is not None, use_cache=False)
    labels = inputs["input_ids"][:, 1:]
    logits = distribution.logits(output.logits[:, :-1, :])
    log_probs = logprobs_from_logits(logits, labels)
    with torch.no_grad():
        entropy = entropy_from_logits(logits)
    values = None
    if value_head is not None:
        values = value_head(output.hidden_states[-1][:, :-1, :].float()).squeeze(-1)
    return ForwardOutput(
        log_probs=log_probs, loss_mask=batch["loss_mask"][:, 1:].float().to(device), values=values, entropy=entropy
    )


def outcome_token_rewards(scores: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Each trajectory's scalar reward on its last generated token (zeros elsewhere)."""
    rewards = torch.zeros_like(loss_mask, dtype=torch.float32)
    positions = torch.arange(loss_mask.shape[1]).expand_as(loss_mask)
    last = torch.where(loss_mask > 0, positions, torch.full_like(positions, -1)).max(dim=1).values
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] = scores[rows].float()
    return rewards


def compute_advantages(
    algorithm: str,
    scores: torch.Tensor,
    loss_mask: torch.Tensor,
    group_ids: list[str],
    training: TrainingConfig,
    values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages, returns)`` per token: GRPO group-normalised outcome, or GAE over a value head."""
    token_rewards = outcome_token_rewards(scores, loss_mask)
    if algorithm == "grpo":
        estimator = core_algos.get_adv_estimator_fn(core_algos.AdvantageEstimator.GRPO)
        return estimator(
            token_level_rewards=token_rewards,
            response_mask=loss_mask,
            index=np.array(group_ids, dtype=object),
            norm_adv_by_std_in_grpo=training.norm_adv_by_std,
        )
    if algorithm == "ppo":
        if values is None:
            raise ValueError("PPO needs values from the value head")
        estimator = core_algos.get_adv_estimator_fn(core_algos.AdvantageEstimator.GAE)
        return estimator(
            token_level_rewards=token_rewards,
            values=values * loss_mask,
            response_mask=loss_mask,
            gamma=training.gamma,
            lam=training.lam,
        )
    raise ValueError(f"unknown algorithm {algorithm!r} (grpo | ppo)")


def actor_config(training: TrainingConfig, rollout_n: int) -> ActorConfig:
    """verl's actor config carrying the clip ratios and loss aggregation the policy loss reads."""
    return ActorConfig(
        strategy="local",
        rollout_n=rollout_n,
        ppo_micro_batch_size_per_gpu=training.batch_size,
        clip_ratio=training.ppo_clip_ratio,
        clip_ratio_low=training.ppo_clip_ratio,
        clip_ratio_high=training.ppo_clip_ratio,
        loss_agg_mode=training.loss_agg_mode,
        use_kl_loss=training.kl_coef > 0,
        kl_loss_coef=training.kl_coef,
        kl_loss_type=training.kl_type,
        ppo_epochs=training.ppo_epochs,
        use_torch_compile=False,
    )


@dataclass
class LossParts:
    total: torch.Tensor
    metrics: dict[str, float]


def policy_loss(
    actor: ActorConfig,
    training: TrainingConfig,
    current: ForwardOutput,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    ref_log_probs: torch.Tensor | None,
    returns: torch.Tensor | None,
    old_values: torch.Tensor | None,
    minibatch_tokens: int,
    minibatch_size: int,
) -> LossParts:
    """Clipped policy loss (+ KL loss, + value loss for PPO) of one micro-batch.

    Aggregation is over the whole optimizer mini-batch (``minibatch_tokens`` /
    ``minibatch_size``), so summing the micro-batches' losses gives the mini-batch loss.
    """
    mask = current.loss_mask
    batch_info = {"dp_size": 1, "batch_num_tokens": minibatch_tokens, "global_batch_size": minibatch_size}
    actor.global_batch_info.update(batch_info)
    loss_fn = core_algos.get_policy_loss_fn("vanilla")
    pg_loss, pg_metrics = loss_fn(
        old_log_prob=old_log_probs,
        log_prob=current.log_probs,
        advantages=advantages,
        response_mask=mask,
        loss_agg_mode=training.loss_agg_mode,
        config=actor,
    )
    total = pg_loss
    metrics = {"actor/pg_loss": float(pg_loss.detach()), **pg_metrics}
    tokens = mask.sum().clamp(min=1.0)
    if current.entropy is not None:
        metrics["actor/entropy"] = float((current.entropy * mask).sum() / tokens)
    if ref_log_probs is not None and training.kl_coef > 0:
        kl = core_algos.kl_penalty(current.log_probs, ref_log_probs, training.kl_type)
        kl_loss = core_algos.agg_loss(kl, mask, training.loss_agg_mode, **batch_info)
        total = total + training.kl_coef * kl_loss
        metrics["actor/kl_loss"] = float(kl_loss.detach())
        metrics["actor/kl"] = float((kl.detach() * mask).sum() / tokens)
    if current.values is not None and returns is not None and old_values is not None:
        vf_loss, vf_clipfrac = core_algos.compute_value_loss(
            vpreds=current.values,
            returns=returns,
            values=old_values,
            response_mask=mask,
            cliprange_value=training.value_clip_range,
            loss_agg_mode=training.loss_agg_mode,
            **batch_info,
        )
        total = total + training.value_loss_coef * vf_loss
        metrics["critic/vf_loss"] = float(vf_loss.detach())
        metrics["critic/vf_clipfrac"] = float(vf_clipfrac.detach())
    return LossParts(total=total, metrics=metrics)
