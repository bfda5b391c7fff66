"""RL prompts: verl-convention parquet rows turned into agent requests, and the step order.

The rows follow verl's conventions (DESIGN §5) so the same file feeds verl's trainer on a
cluster; the local engine reads the question, images, ground truth and search-cache key
from them. The order is a seeded permutation per epoch, so a resumed run sees the same
prompts at the same step as an uninterrupted one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from deepeyes import wire
from deepeyes.agent import AgentRequest
from deepeyes.rl.config import RLConfig, RLSetupError
from deepeyes.rl.data_sources import (
    PromptBudget,
    RLDataSourceError,
    check_env_names,
    expand_data_files,
    filter_overlong_prompts,
)


class RLDataError(RLSetupError):
    """The RL data file is missing or a row lacks what training needs."""


@dataclass
class RLPrompt:
    """One training prompt."""

    uid: str  # stable id: the GRPO group key
    question: str
    images: list[Path]
    ground_truth: str
    data_source: str | None
    sample_index: str | None
    metadata: dict[str, Any]

    def request(self, sample: int) -> AgentRequest:
        return AgentRequest(
            question=self.question,
            images=list(self.images),
            id=f"{self.uid}#{sample}",
            ground_truth=self.ground_truth,
            data_source=self.data_source,
            sample_index=self.sample_index,
            metadata={**self.metadata, "prompt_uid": self.uid, "sample": sample},
        )


def _image_path(entry: Any, roots: list[Path], row: int) -> Path:
    value = entry.get("image") if isinstance(entry, dict) else entry
    if not isinstance(value, str) or not value:
        raise RLDataError(f"row {row}: image entry {entry!r} is not a path (expected {{'image': 'path'}})")
    path = Path(value)
    if path.is_absolute():
        return path
    for root in roots:
        if (root / path).is_file():
            return root / path
    raise RLDataError(f"row {row}: image {value!r} not found under {[str(r) for r in roots]}")


def _question(row: dict[str, Any], index: int) -> str:
    extra = row.get("extra_info") or {}
    if extra.get("question"):
        return str(extra["question"])
    users = [m for m in row.get("prompt") or [] if m.get("role") == "user"]
    if not users:
        raise RLDataError(f"row {index}: no extra_info.question and no user message in 'prompt'")
    return str(users[-1]["content"]).replace(wire.IMAGE_PLACEHOLDER, "").strip()


def load_prompts(path: str | Path | list[str | Path], image_root: str | Path | None = None) -> list[RLPrompt]:
    """Read RL parquet rows (verl conventions) into prompts, resolving image paths.

    ``path`` is anything :func:`~deepeyes.rl.data_sources.expand_data_files` accepts: one
    file, a folder of parts, a glob, a comma-separated list or a hub data set id. Every
    row's tool environment is checked first (:func:`~deepeyes.rl.data_sources.check_env_names`).
    """
    try:
        files = expand_data_files(path if isinstance(path, list) else str(path))
    except RLDataSourceError as exc:
        raise RLDataError(f"{exc} (make the sample data with `python -m deepeyes.data.synth --out data/sample`)") from exc
    check_env_names(files)
    prompts = []
    for file in files:
        rows = pq.read_table(file).to_pylist()
        if not rows:
            raise RLDataError(f"{file}: no rows")
        roots = [Path(image_root)] if image_root else [file.parent, file.parent.parent]
        prompts += [_prompt(file, index, row, roots, prefix=f"{file.stem}:" if len(files) > 1 else "") for index, row in enumerate(rows)]
    return prompts


def _prompt(file: Path, index: int, row: dict[str, Any], roots: list[Path], prefix: str) -> RLPrompt:
    reward_model = row.get("reward_model") or {}
    if reward_model.get("ground_truth") in (None, ""):
        raise RLDataError(f"{file}: row {index} has no reward_model.ground_truth")
    extra = dict(row.get("extra_info") or {})
    uid = prefix + str(extra.get("id") or extra.get("index", index))
    return RLPrompt(
        uid=uid,
        question=_question(row, index),
        images=[_image_path(entry, roots, index) for entry in row.get("images") or []],
        ground_truth=str(reward_model["ground_truth"]),
        data_source=row.get("data_source"),
        sample_index=str(extra.get("sample_index") or extra.get("id") or uid),
        metadata={key: extra[key] for key in ("task", "answer_type", "choices", "required_tools") if extra.get(key) is not None},
    )


def prompt_budget(config: RLConfig) -> PromptBudget:
    """``data.max_prompt_length`` measured with the base model's tokenizer and image limits.

    The processor of ``model.base_model`` (a directory or hub id) gives the tokenizer and
    the ``min_pixels`` / ``max_pixels`` the policy resizes images to (the SFT adapter
    changes neither).

    Raises:
        FileNotFoundError: the base model cannot be found or fetched.
    """
    from transformers import AutoProcessor

    from deepeyes.hub import resolve as hub_resolve

    processor = AutoProcessor.from_pretrained(hub_resolve(config.locate(config.model.base_model), "model", what="model.base_model"))  # type: ignore[arg-type]
    size = processor.image_processor.size
    tokenizer = processor.tokenizer
    return PromptBudget(
        max_prompt_length=config.data.max_prompt_length,
        count_text_tokens=lambda text: len(tokenizer(text).input_ids),
        min_pixels=int(size["shortest_edge"]),
        max_pixels=int(size["longest_edge"]),
    )


def fit_prompt_budget(prompts: list[RLPrompt], budget: PromptBudget, source: str) -> list[RLPrompt]:
    """The prompts whose first model input fits ``budget``; the number dropped is logged.

    A prompt is measured as the agent loop first sends it: the tool-use system prompt, the
    user turn (:func:`deepeyes.prompts.user_prompt`) and its images' vision tokens; chat
    template markers (a few tokens per turn) are not counted.

    Raises:
        RLDataSourceError: every prompt is too long.
    """
    from deepeyes.prompts import system_prompt, user_prompt

    system = system_prompt()
    return filter_overlong_prompts(
        prompts, lambda p: system + "\n" + user_prompt(p.question, len(p.images)), lambda p: p.images, budget, source
    )


class PromptSchedule:
    """Which prompts each step trains on: epoch-wise seeded permutations, cut into batches."""

    def __init__(self, prompts: list[RLPrompt], batch_size: int, seed: int, shuffle: bool = True):
        if batch_size > len(prompts):
            raise RLDataError(f"data.batch_size {batch_size} exceeds the {len(prompts)} prompts in the data")
        self.prompts = prompts
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle

    @property
    def steps_per_epoch(self) -> int:
        return len(self.prompts) // self.batch_size

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.prompts)))
        if self.shuffle:
            random.Random(self.seed * 100_003 + epoch).shuffle(order)
        return order

    def batch(self, step: int) -> list[RLPrompt]:
        """The prompts of (0-based) ``step``; the tail of an epoch that does not fill a batch is skipped."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = self._order(epoch)
        start = position * self.batch_size
        return [self.prompts[i] for i in order[start : start + self.batch_size]]
