"""The ``local`` engine: RL on one machine (CPU or one GPU) without Ray, FSDP or vLLM.

Each step: roll the current policy weights through the shared agent loop with live tools
(``rollout.n`` trajectories per prompt), score them on the reward server, turn the
conversations into tokens with a generated-token mask, and update a LoRA adapter with
verl's estimators and losses (:mod:`deepeyes.rl.algorithms`). verl's own trainer needs
GPUs and an inference server; this engine is what runs everywhere else, and what CI runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm import tqdm

from deepeyes.agent import AgentConfig, AgentLoop, Rollout
from deepeyes.analysis.collapse import CollapseAlarm
from deepeyes.config import to_dict
from deepeyes.policies.base import Generation
from deepeyes.policies.batching import BatchingPolicy
from deepeyes.policies.hf import HFPolicy
from deepeyes.rewards.client import RewardClient
from deepeyes.rl import algorithms, checkpoint
from deepeyes.rl.config import RLConfig, RLSetupError
from deepeyes.rl.data import PromptSchedule, RLPrompt, prompt_budget, run_prompts
from deepeyes.rl.dynamic_sampling import PromptStream, fill_batch
from deepeyes.rl.masking import TokenizedConversation, collate, tokenize_conversation
from deepeyes.rl.metrics import StepLogger, rollout_metrics
from deepeyes.rl.policy_model import PolicyModel, load_policy
from deepeyes.rl.sampled import trajectory_rows
from deepeyes.rl.services import rl_services
from deepeyes.trajectory import write_jsonl

logger = logging.getLogger(__name__)

#: The held-in evaluation batch samples with its own seed, so its curve does not depend on training's RNG.
_EVAL_SEED = 12345
_REWARD_CHUNK = 256
#: Written into each checkpoint: how many prompts the run has drawn (dynamic sampling makes
#: that more than ``step × data.batch_size``, so the step alone no longer tells).
STREAM_FILE = "prompt_stream.json"


@dataclass
class TrainResult:
    steps_done: int
    output_dir: Path
    last_checkpoint: Path | None
    metrics_path: Path


@dataclass
class _Scored:
    rollouts: list[Rollout]
    results: list[dict[str, Any]]
    rollout_s: float
    reward_s: float
    #: Per rollout: ``(prefix length, Generation)`` for each generated turn (the sampled ids).
    #: Empty for a rollout from a policy that returns text only.
    turns: list[list[tuple[int, Generation]]] = field(default_factory=list)

    def group_ids(self) -> list[str]:
        """Per rollout, its GRPO group: the prompt it answers."""
        return [r.trajectory.metadata["prompt_uid"] for r in self.rollouts]

    def group_values(self, metric: str) -> tuple[list[str], list[float]]:
        """Per rollout, its group and the reward key ``metric`` (for dynamic sampling)."""
        return self.group_ids(), [float(result[metric]) for result in self.results]

    def select(self, groups: set[str]) -> _Scored:
        """The rollouts of ``groups`` (timings stay with the round they were measured on)."""
        keep = [i for i, group in enumerate(self.group_ids()) if group in groups]
        return _Scored(
            [self.rollouts[i] for i in keep], [self.results[i] for i in keep], 0.0, 0.0,
            [self.turns[i] for i in keep] if self.turns else [],
        )

    @staticmethod
    def join(parts: list[_Scored]) -> _Scored:
        """Several rounds as one batch: rollouts in order, times summed."""
        return _Scored(
            [r for p in parts for r in p.rollouts],
            [r for p in parts for r in p.results],
            sum(p.rollout_s for p in parts),
            sum(p.reward_s for p in parts),
            [t for p in parts for t in p.turns],
        )


class LocalTrainer:
    """Runs ``trainer.total_steps`` RL steps; use :meth:`run` inside nothing (it starts its own services)."""

    def __init__(self, config: RLConfig, resume: str | None = None, show_progress: bool = True):
        self.config = config
        self.output_dir = config.resolve(config.output.dir) or Path(config.output.dir)
        self.resume = resume
        self.show_progress = show_progress
        if config.trainer.num_threads:
            torch.set_num_threads(config.trainer.num_threads)

    # -- setup ---------------------------------------------------------------------------
    def _total_steps(self, schedule: PromptSchedule) -> int:
        if self.config.trainer.total_steps is not None:
            return self.config.trainer.total_steps
        return self.config.training.num_train_epochs * schedule.steps_per_epoch

    def _load(self, resume_dir: Path | None) -> None:
        config = self.config
        start, sft_adapter = config.initial_model()
        self.policy: PolicyModel = load_policy(
            config.model, start, sft_adapter, resume_adapter=resume_dir / "policy" if resume_dir else None
        )
        self.value_head: torch.nn.Module | None = None
        if config.algorithm.name == "ppo":
            hidden = self.policy.model.get_input_embeddings().embedding_dim
            self.value_head = torch.nn.Linear(hidden, 1).to(config.model.device)
            torch.nn.init.zeros_(self.value_head.weight)
            torch.nn.init.zeros_(self.value_head.bias)
        parameters = self.policy.trainable_parameters() + (list(self.value_head.parameters()) if self.value_head else [])
        self.optimizer = torch.optim.AdamW(parameters, lr=config.training.learning_rate, weight_decay=config.training.weight_decay)
        self.actor = algorithms.actor_config(config.training, config.rollout.n)
        suppressed = getattr(self.policy.model.generation_config, "suppress_tokens", None) or []
        # Scoring uses the distribution the rollout sampled from (verl divides by the temperature).
        self.distribution = algorithms.SamplingDistribution(
            temperature=config.rollout.temperature if config.rollout.temperature > 0 else 1.0,
            suppressed_ids=tuple(int(i) for i in suppressed),
        )
        probe = HFPolicy.from_model(self.policy.model, self.policy.processor)
        self.min_pixels, self.max_pixels = probe.min_pixels, probe.max_pixels

    def _hf_policy(self) -> BatchingPolicy:
        rollout = self.config.rollout
        return BatchingPolicy(
            HFPolicy.from_model(
                self.policy.model,
                self.policy.processor,
                temperature=rollout.temperature,
                top_p=rollout.top_p,
                max_new_tokens=rollout.max_new_tokens,
                device=self.config.model.device,
                max_pixels=self.max_pixels,
                min_pixels=self.min_pixels,
            ),
            max_batch=rollout.concurrency,
        )

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> TrainResult:
        config = self.config
        resume_dir = checkpoint.resolve_resume(self.output_dir, self.resume)
        if resume_dir is None and checkpoint.list_checkpoints(self.output_dir):
            raise RLSetupError(
                f"{self.output_dir} already holds checkpoints of an earlier run: continue it with --resume, "
                "or choose another output.dir (--set output.dir=...)"
            )
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
        budget = prompt_budget(config)
        prompts = run_prompts(config, config.data.rl_data_path, budget)
        schedule = PromptSchedule(prompts, config.data.batch_size, config.data.seed, config.data.shuffle)
        total_steps = self._total_steps(schedule)
        if config.algorithm.filter_groups.enable and config.algorithm.name == "ppo":
            logger.warning("algorithm.filter_groups with ppo: groups of equal rewards are dropped although PPO's value baseline gives them a signal")
        torch.manual_seed(config.training.seed)
        random.seed(config.training.seed)
        self._load(resume_dir)
        start_step = 0
        stream = PromptStream(schedule)
        if resume_dir is not None:
            state = checkpoint.restore_training_state(resume_dir, self.optimizer, self.value_head)
            start_step = state.step
            stream.position = _stream_position(resume_dir, state, config.data.batch_size)
            logger.info("resuming from %s (step %d, prompt %d)", resume_dir, start_step, stream.position)
        writer = StepLogger(self.output_dir, config.trainer.loggers, config.trainer.project_name, config.trainer.experiment_name, to_dict(config))
        # A fresh run starts its logs over; a resumed one drops what came after its checkpoint.
        writer.file.truncate_after(start_step if resume_dir else -1)
        _truncate_trajectories(self.output_dir / "trajectories.jsonl", start_step)
        last_checkpoint = resume_dir
        agent_config = AgentConfig(
            max_turns=config.rollout.max_turns,
            max_context_tokens=config.rollout.max_context_tokens,
            concurrency=config.rollout.concurrency,
        )
        eval_path = config.trainer.eval_data_path
        eval_pool = run_prompts(config, eval_path, budget, "trainer.eval_data_path") if eval_path else prompts
        held_in = eval_pool[: config.trainer.eval_prompts]
        try:
            with rl_services(config, self.output_dir / "logs") as (tools, reward_url):
                self.agent = AgentLoop(tools, agent_config)
                self.reward = RewardClient(reward_url)
                if config.trainer.eval_steps and start_step == 0:
                    writer.write(0, self._evaluate(held_in))
                bar = tqdm(range(start_step, total_steps), desc="RL steps", unit="step", disable=not self.show_progress, initial=start_step, total=total_steps)
                alarm = CollapseAlarm(config.trainer.collapse_fraction, config.trainer.collapse_patience)
                for step in bar:
                    metrics = self._train_step(step, stream)
                    done = step + 1
                    alarm.update_and_log(done, metrics["tools/calls_per_trajectory"])
                    if config.trainer.eval_steps and (done % config.trainer.eval_steps == 0 or done == total_steps):
                        metrics.update(self._evaluate(held_in))
                    writer.write(done, metrics)
                    logger.info(
                        "step %d/%d score %.3f±%.3f acc %.2f turns %.1f | time gen %.1fs reward %.1fs update %.1fs step %.1fs%s",
                        done, total_steps, metrics["critic/score/mean"], metrics["critic/score/std"], metrics["reward/accuracy"],
                        metrics["rollout/turns"], metrics["timing_s/gen"], metrics["timing_s/reward"],
                        metrics["timing_s/update_actor"], metrics["timing_s/step"], _groups_note(metrics),
                    )
                    bar.set_postfix(score=f"{metrics['critic/score/mean']:.3f}", step_s=f"{metrics['timing_s/step']:.1f}")
                    save_every = config.output.save_steps
                    if done == total_steps or (save_every and done % save_every == 0):
                        last_checkpoint = checkpoint.save_checkpoint(
                            self.output_dir,
                            checkpoint.TrainerState(step=done, config=to_dict(config)),
                            self.policy,
                            self.optimizer,
                            self.value_head,
                            keep=config.output.save_total_limit,
                            extra_files={STREAM_FILE: json.dumps({"position": stream.position})},
                        )
                self.reward.close()
        finally:
            writer.close()
        return TrainResult(total_steps, self.output_dir, last_checkpoint, writer.path)

    def _rollout_and_score(self, requests: list) -> _Scored:
        self.policy.model.eval()
        policy = self._hf_policy()
        started = time.perf_counter()
        rollouts = self.agent.run_batch(policy, requests)
        rollout_s = time.perf_counter() - started
        started = time.perf_counter()
        payloads = [{"trajectory": r.trajectory.to_dict()} for r in rollouts]
        results = []
        for offset in range(0, len(payloads), _REWARD_CHUNK):
            results += self.reward.score_batch(payloads[offset : offset + _REWARD_CHUNK])
        reward_s = time.perf_counter() - started
        for rollout, result in zip(rollouts, results, strict=True):
            rollout.trajectory.reward = result
        turns = [policy.sampled_turns(r.messages) for r in rollouts]
        return _Scored(rollouts, results, rollout_s, reward_s, turns)

    def _roll_out(self, prompts: list[RLPrompt]) -> _Scored:
        """``rollout.n`` scored trajectories of each prompt."""
        return self._rollout_and_score([prompt.request(sample) for prompt in prompts for sample in range(self.config.rollout.n)])

    def _train_step(self, step: int, stream: PromptStream) -> dict[str, float]:
        """Roll out the next prompts (refilling dropped groups, :mod:`deepeyes.rl.dynamic_sampling`), then update.

        Reward and tool metrics describe every rollout of the step, dropped groups included
        (what the policy did); the update sees the kept groups only.
        """
        started = time.perf_counter()
        filter_groups = self.config.algorithm.filter_groups
        filled = fill_batch(self.config.data.batch_size, filter_groups, stream.take, self._roll_out, _Scored.group_values)
        scored = _Scored.join([r.batch for r in filled.rounds])
        for round_ in filled.rounds:
            for rollout, group in zip(round_.batch.rollouts, round_.batch.group_ids(), strict=True):
                rollout.trajectory.metadata["step"] = step + 1
                if filter_groups.enable:
                    rollout.trajectory.metadata["filter_groups"] = "kept" if group in round_.kept else "dropped"
        if self.config.output.log_trajectories:
            write_jsonl(self.output_dir / "trajectories.jsonl", [r.trajectory for r in scored.rollouts])
        kept = _Scored.join([r.batch.select(r.kept) for r in filled.rounds])
        update_started = time.perf_counter()
        if kept.rollouts:
            update_metrics = self._update(kept)
        else:
            logger.warning("step %d: every group's %s is constant: no update", step + 1, filter_groups.metric)
            update_metrics = {}
        update_s = time.perf_counter() - update_started
        metrics = rollout_metrics([r.trajectory for r in scored.rollouts], scored.results)
        metrics.update(update_metrics)
        if filter_groups.enable:
            metrics.update(filled.metrics())
        metrics.update(
            {
                # verl's phases (ray_trainer.fit's marked_timer names); gen and reward sum over dynamic-sampling rounds.
                "timing_s/gen": scored.rollout_s,
                "timing_s/reward": scored.reward_s,
                "timing_s/update_actor": update_s,
                "timing_s/step": time.perf_counter() - started,
            }
        )
        return metrics

    # -- the update --------------------------------------------------------------------------
    def _micro_batches(self, indices: list[int]) -> list[list[int]]:
        size = self.config.training.batch_size
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def _minibatches(self, owners: list[int], trajectories: int) -> list[list[list[int]]]:
        """Row indices per optimizer step, split into micro-batches.

        Sizes count trajectories, not rows (``training.batch_size`` trajectories per
        forward/backward, ``× gradient_accumulation_steps`` per optimizer step), and all
        turns of one trajectory stay in one micro-batch, so splitting a trajectory into
        per-turn rows does not change how many optimizer steps a training step takes.
        """
        training = self.config.training
        per_step = training.batch_size * training.gradient_accumulation_steps
        rows_of: dict[int, list[int]] = {}
        for row, owner in enumerate(owners):
            rows_of.setdefault(owner, []).append(row)
        steps = []
        for start in range(0, trajectories, per_step):
            micro = []
            for micro_start in range(start, min(trajectories, start + per_step), training.batch_size):
                owners_here = range(micro_start, min(trajectories, start + per_step, micro_start + training.batch_size))
                micro.append([row for owner in owners_here for row in rows_of.get(owner, [])])
            steps.append([m for m in micro if m])
        return [step for step in steps if step]

    def _rows(self, scored: _Scored) -> tuple[list[TokenizedConversation], list[int]]:
        """Training rows and, per row, the index of its rollout.

        A rollout whose turns carry sampled ids gives one row per turn (exact prompt ids +
        exact sampled ids, :mod:`deepeyes.rl.sampled`); one from a text-only policy gives
        its re-tokenised conversation as a single row.
        """
        processor = self.policy.processor
        rows: list[TokenizedConversation] = []
        owners: list[int] = []
        size = {"min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "max_length": self.config.data.max_seq_length}
        for index, rollout in enumerate(scored.rollouts):
            turns = scored.turns[index] if index < len(scored.turns) else []
            if turns and all(generation.token_ids is not None for _, generation in turns):
                built = trajectory_rows(processor, rollout.messages, turns, **size)
            else:
                built = [tokenize_conversation(processor, rollout.messages, **size)]
            rows += built
            owners += [index] * len(built)
        return rows, owners

    def _advantages(
        self, scored: _Scored, owners: list[int], masks: torch.Tensor, values: list[torch.Tensor], width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row token advantages and returns.

        GRPO normalises each trajectory's outcome within its prompt group *once per
        trajectory* (a trajectory with three turns is not counted three times in the group
        statistics) and gives the result to every token of each of its turns. PPO runs GAE
        on each row with the trajectory's outcome on the row's last sampled token.
        """
        config = self.config
        scores = torch.tensor([float(r["score"]) for r in scored.results])
        group_ids = [r.trajectory.metadata["prompt_uid"] for r in scored.rollouts]
        if config.algorithm.name == "grpo":
            per_trajectory, _ = algorithms.compute_advantages(
                "grpo", scores, torch.ones((len(scores), 1)), group_ids, config.training
            )
            advantages = per_trajectory[owners, :1] * masks
            return advantages, advantages
        row_scores = scores[owners]
        row_groups = [group_ids[i] for i in owners]
        return algorithms.compute_advantages(
            config.algorithm.name, row_scores, masks, row_groups, config.training, _pad_rows(values, width)
        )

    def _update(self, scored: _Scored) -> dict[str, float]:
        config = self.config
        processor = self.policy.processor
        conversations, owners = self._rows(scored)
        pad_id = processor.tokenizer.pad_token_id
        count = len(conversations)
        minibatches = self._minibatches(owners, len(scored.rollouts))
        # One pass over one mini-batch is fully on-policy: the old log-probs equal the update's own
        # (detached) log-probs, so the separate scoring pass is skipped.
        on_policy = config.training.ppo_epochs == 1 and len(minibatches) == 1 and config.algorithm.name == "grpo"
        old, ref, values = self._score_tokens(conversations, pad_id, need_old=not on_policy)
        width = max(c.length for c in conversations) - 1
        masks = _pad_rows([c.loss_mask[1:].float() for c in conversations], width)
        advantages, returns = self._advantages(scored, owners, masks, values, width)

        self.policy.model.train()
        actor_parameters = self.policy.trainable_parameters()
        critic_parameters = list(self.value_head.parameters()) if self.value_head is not None else []
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        actor_norms: list[float] = []
        critic_norms: list[float] = []
        for _ in range(config.training.ppo_epochs):
            for micros in minibatches:
                members = [row for micro in micros for row in micro]
                tokens = max(1, int(sum(masks[i].sum() for i in members)))
                loss_sums: dict[str, float] = {}
                for micro in micros:
                    batch = collate([conversations[i] for i in micro], pad_id)
                    current = algorithms.forward(self.policy.model, batch, self.value_head, self.distribution)
                    cut = current.log_probs.shape[1]
                    device = current.log_probs.device
                    parts = algorithms.policy_loss(
                        self.actor,
                        config.training,
                        current,
                        old_log_probs=current.log_probs.detach() if on_policy else _pad_rows([old[i] for i in micro], cut).to(device),
                        advantages=advantages[micro, :cut].to(device),
                        ref_log_probs=_pad_rows([ref[i] for i in micro], cut).to(device) if ref else None,
                        returns=returns[micro, :cut].to(device) if values else None,
                        old_values=_pad_rows([values[i] for i in micro], cut).to(device) if values else None,
                        minibatch_tokens=tokens,
                        minibatch_size=len(members),
                    )
                    parts.total.backward()
                    for name, value in parts.metrics.items():
                        if "loss" in name:  # partial sums of the mini-batch loss
                            loss_sums[name] = loss_sums.get(name, 0.0) + value
                        else:
                            sums[name] = sums.get(name, 0.0) + value
                            counts[name] = counts.get(name, 0) + 1
                # The policy and the value head are clipped apart (verl's actor and critic are
                # separate workers): one's large gradient must not shrink the other's step.
                actor_norms.append(float(torch.nn.utils.clip_grad_norm_(actor_parameters, config.training.max_grad_norm)))
                if critic_parameters:
                    critic_norms.append(float(torch.nn.utils.clip_grad_norm_(critic_parameters, config.training.max_grad_norm)))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                for name, value in loss_sums.items():
                    sums[name] = sums.get(name, 0.0) + value
                    counts[name] = counts.get(name, 0) + 1
        metrics = {name: sums[name] / counts[name] for name in sums}
        valid = masks > 0
        row_tokens = masks.sum(dim=1)
        metrics.update(
            {
                "actor/grad_norm": sum(actor_norms) / len(actor_norms),
                "actor/advantage_mean": float(advantages[valid].mean()) if valid.any() else 0.0,
                "actor/advantage_abs_max": float(advantages[valid].abs().max()) if valid.any() else 0.0,
                "actor/trained_tokens": float(masks.sum()),
                "actor/sequence_tokens": float(sum(c.length for c in conversations) / count),
                "actor/rows": float(count),
                "response_length/mean": float(row_tokens.mean()),
                "response_length/max": float(row_tokens.max()),
                "response_length/clip_ratio": _clip_ratio(scored),
            }
        )
        if critic_norms:
            metrics["critic/grad_norm"] = sum(critic_norms) / len(critic_norms)
        return metrics

    @torch.no_grad()
    def _score_tokens(
        self, conversations: list[TokenizedConversation], pad_id: int, need_old: bool = True
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per conversation: log-probs under the rollout weights (when ``need_old``), under the reference, and values."""
        self.policy.model.eval()
        old: list[torch.Tensor] = []
        ref: list[torch.Tensor] = []
        values: list[torch.Tensor] = []
        for micro in self._micro_batches(list(range(len(conversations)))):
            batch = collate([conversations[i] for i in micro], pad_id)
            lengths = [conversations[i].length - 1 for i in micro]
            if need_old:
                current = algorithms.forward(self.policy.model, batch, self.value_head, self.distribution)
                old += [current.log_probs[row, :n].cpu() for row, n in enumerate(lengths)]
                if current.values is not None:
                    values += [current.values[row, :n].cpu() for row, n in enumerate(lengths)]
            if self.config.training.kl_coef > 0:
                with self.policy.reference_context():
                    reference = algorithms.forward(self.policy.reference_model(), batch, distribution=self.distribution)
                ref += [reference.log_probs[row, :n].cpu() for row, n in enumerate(lengths)]
        return old, ref, values

    # -- held-in evaluation ------------------------------------------------------------------
    def _evaluate(self, prompts: list[RLPrompt]) -> dict[str, float]:
        """Reward of a fixed batch of prompts under the current weights (the learning curve):
        held-in training prompts, or held-out ones from ``trainer.eval_data_path``."""
        requests = [p.request(k) for p in prompts for k in range(self.config.trainer.eval_n)]
        with torch.random.fork_rng():
            torch.manual_seed(_EVAL_SEED)
            scored = self._rollout_and_score(requests)
        metrics = rollout_metrics([r.trajectory for r in scored.rollouts], scored.results, prefix="eval/")
        return {key: value for key, value in metrics.items() if key.startswith(("eval/critic/score/", "eval/reward/", "eval/rollout/", "eval/tools/"))}


def _groups_note(metrics: dict[str, float]) -> str:
    """The step log line's dynamic-sampling part (empty when it is off)."""
    if "filter_groups/kept" not in metrics:
        return ""
    return " | groups kept {:.0f} dropped {:.0f} in {:.0f} rounds".format(
        metrics["filter_groups/kept"], metrics["filter_groups/dropped"], metrics["filter_groups/gen_rounds"]
    )


def _stream_position(directory: Path, state: checkpoint.TrainerState, batch_size: int) -> int:
    """Prompts drawn before the checkpoint in ``directory``.

    Checkpoints carry it in :data:`STREAM_FILE`. One without that file was written before
    the file existed (or the run stopped between the two writes): its run drew
    ``step × data.batch_size`` prompts unless it filtered groups, which then cannot be
    resumed without repeating or skipping prompts.
    """
    path = directory / STREAM_FILE
    if path.is_file():
        return int(json.loads(path.read_text(encoding="utf-8"))["position"])
    algorithm = state.config.get("algorithm")
    if isinstance(algorithm, dict) and algorithm.get("filter_groups", {}).get("enable"):
        raise RLSetupError(
            f"{directory} has no {STREAM_FILE}: its run filtered groups, so how many prompts it drew is unknown; "
            "resume from an earlier checkpoint"
        )
    return state.step * batch_size


def _clip_ratio(scored: _Scored) -> float:
    """Share of generated turns cut at ``max_new_tokens`` (verl's ``response_length/clip_ratio``)."""
    reasons = [generation.finish_reason for turns in scored.turns for _, generation in turns]
    return sum(reason == "length" for reason in reasons) / len(reasons) if reasons else 0.0


def _pad_rows(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """Stack 1-D tensors, cut or zero-padded to ``width``."""
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for index, row in enumerate(rows):
        n = min(width, row.shape[0])
        out[index, :n] = row[:n].float()
    return out


def _truncate_trajectories(path: Path, step: int) -> None:
    """Drop logged trajectories of steps after ``step`` (they are rolled out again on resume);
    a fresh run (``step`` 0) starts the file over. A torn last line is dropped with a warning
    (:func:`deepeyes.rl.checkpoint.truncate_log`)."""
    if step <= 0:
        with contextlib.suppress(FileNotFoundError):
            path.write_bytes(b"")
        return
    checkpoint.truncate_log(path, lambda record: record.get("metadata", {}).get("step", 0) <= step)
