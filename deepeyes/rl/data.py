"""RL prompts: the one reader of RL rows, for both engines, and the step order.

The rows follow verl's conventions (DESIGN §5) so the same file feeds verl's trainer on a
cluster. :func:`read_row` is the only place a row becomes a prompt: the local engine reads
parquet rows with it (:func:`load_prompts`), verl's launch reads the same rows with it
before copying them for verl (:mod:`deepeyes.rl.verl_launch`), and our agent loop inside
verl reads verl's dataset items with it (:mod:`deepeyes.rl.verl_agent_loop`). So a row
means the same on both engines: the same question, images, ground truth and group key,
and the same errors — a missing ground truth or a missing image names the file and row.

The order is a seeded permutation per epoch, so a resumed run sees the same prompts at
the same step as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
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

#: ``extra_info`` keys kept as trajectory metadata (the behaviour report groups by them; the
#: grounding reward reads ``image_frame``).
METADATA_KEYS: tuple[str, ...] = ("task", "answer_type", "choices", "required_tools", "image_frame")


class RLDataError(RLSetupError):
    """The RL data file is missing or a row lacks what training needs."""


@dataclass
class RLPrompt:
    """One training prompt, and where it was read (``file``, ``row``) when it came from a file."""

    uid: str  # stable id: the GRPO group key
    question: str
    images: list[Path]
    ground_truth: str
    data_source: str | None
    sample_index: str | None
    metadata: dict[str, Any]
    file: Path | None = None
    row: int | None = None

    def request(self, sample: int, step: int | None = None) -> AgentRequest:
        """The agent request of the prompt's ``sample``-th rollout (at training ``step`` when given)."""
        metadata = {**self.metadata, "prompt_uid": self.uid, "sample": sample}
        if step is not None:
            metadata["step"] = step
        return AgentRequest(
            question=self.question,
            images=list(self.images),
            id=f"{self.uid}#{sample}",
            ground_truth=self.ground_truth,
            data_source=self.data_source,
            sample_index=self.sample_index,
            metadata=metadata,
        )


def plain(value: Any) -> Any:
    """numpy scalars/arrays (verl's dataset items carry them) and nested containers → Python values."""
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _messages(row: Mapping[str, Any], key: str = "prompt") -> list[dict[str, Any]]:
    """The row's chat messages under ``key``: ``prompt`` as the parquet has them, ``raw_prompt`` as
    verl's dataset items carry them (``RLHFDataset.__getitem__`` builds it from ``prompt`` and the
    ``images`` column, which it then drops)."""
    return [dict(m) for m in plain(row.get(key)) or []]


def _parts(content: Any) -> list[dict[str, Any]]:
    """Message content as parts: verl's ``_build_messages`` turns ``<image>`` strings into a list of parts."""
    return content if isinstance(content, list) else [{"type": "text", "text": str(content)}]


def _question(row: Mapping[str, Any], where: str) -> str:
    extra = plain(row.get("extra_info")) or {}
    if extra.get("question"):
        return str(extra["question"])
    users = [m for m in _messages(row) or _messages(row, "raw_prompt") if m.get("role") == "user"]
    if not users:
        raise RLDataError(f"{where}: no extra_info.question and no user message in 'prompt'")
    text = "".join(p.get("text", "") for p in _parts(users[-1].get("content")) if p.get("type") == "text")
    return text.replace(wire.IMAGE_PLACEHOLDER, "").strip()


def _image_entries(row: Mapping[str, Any]) -> list[Any]:
    """The row's image entries: its ``images`` column, or (verl's items) the image parts of its messages."""
    if row.get("images") is not None:
        return list(plain(row["images"]))
    return [part for message in _messages(row, "raw_prompt") for part in _parts(message.get("content")) if part.get("type") == "image"]


def _image_path(entry: Any, roots: Sequence[Path], where: str) -> Path:
    """The file an image entry names: absolute as written, relative under the first root that has it."""
    value = entry.get("image") if isinstance(entry, Mapping) else entry
    if not isinstance(value, str) or not value:
        raise RLDataError(f"{where}: image entry {str(entry)[:80]!r} is not a path (expected {{'image': 'path'}})")
    path = Path(value)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    searched = "" if path.is_absolute() else f" under {[str(r) for r in roots]} (set data.image_root to the folder the paths start from)"
    raise RLDataError(f"{where}: image {value!r} not found{searched}")


def read_row(row: Mapping[str, Any], where: str, roots: Sequence[Path] = (), position: int = 0, uid_prefix: str = "") -> RLPrompt:
    """One RL row (a parquet row, or an item of verl's ``RLHFDataset``) as a prompt.

    ``where`` names the row in errors (``file: row N``); ``roots`` are where relative image
    paths are looked up (``data.image_root``, else the parquet's folder and its parent);
    ``position`` is the row's index in its file, the group key when the row has no
    ``extra_info.id`` / ``index``; ``uid_prefix`` tells the parts of a multi-file data set apart.

    Raises:
        RLDataError: no ground truth, no question, or an image that is not a file.
    """
    truth = plain((row.get("reward_model") or {}).get("ground_truth"))
    if truth is None or truth == "":
        raise RLDataError(f"{where}: no reward_model.ground_truth")
    extra = plain(row.get("extra_info")) or {}
    # A row prepared for verl carries the uid it was given here, so both engines group alike.
    uid = str(extra.get("uid") or uid_prefix + str(extra.get("id") or extra.get("index", position)))
    return RLPrompt(
        uid=uid,
        question=_question(row, where),
        images=[_image_path(entry, roots, where) for entry in _image_entries(row)],
        ground_truth=str(truth),
        data_source=str(row["data_source"]) if row.get("data_source") is not None else None,
        sample_index=str(extra.get("sample_index") or extra.get("id") or uid),
        metadata={key: extra[key] for key in METADATA_KEYS if extra.get(key) is not None},
    )


def image_roots(file: Path, image_root: str | Path | None) -> list[Path]:
    """Where relative image paths of ``file`` resolve: ``data.image_root`` alone when set, else the file's folder and its parent."""
    return [Path(image_root)] if image_root else [file.parent, file.parent.parent]


def data_files(path: str | Path | list[str | Path]) -> list[Path]:
    """The parquet files ``path`` names, with every row's tool environment checked."""
    try:
        files = expand_data_files(path if isinstance(path, list) else str(path))
    except RLDataSourceError as exc:
        raise RLDataError(f"{exc} (make the sample data with `python -m deepeyes.data.synth --out data/sample`)") from exc
    check_env_names(files)
    return files


def load_prompts(path: str | Path | list[str | Path], image_root: str | Path | None = None) -> list[RLPrompt]:
    """Read RL parquet rows (verl conventions) into prompts with :func:`read_row`.

    ``path`` is anything :func:`~deepeyes.rl.data_sources.expand_data_files` accepts: one
    file, a folder of parts, a glob, a comma-separated list or a hub data set id. Every
    row's tool environment is checked first (:func:`~deepeyes.rl.data_sources.check_env_names`).
    """
    files = data_files(path)
    prompts = []
    for file in files:
        rows = pq.read_table(file).to_pylist()
        if not rows:
            raise RLDataError(f"{file}: no rows")
        roots = image_roots(file, image_root)
        prefix = f"{file.stem}:" if len(files) > 1 else ""
        for index, row in enumerate(rows):
            prompt = read_row(row, f"{file}: row {index}", roots, position=index, uid_prefix=prefix)
            prompt.file, prompt.row = file, index
            prompts.append(prompt)
    return prompts


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


def run_prompts(config: RLConfig, path: str, budget: PromptBudget, setting: str = "data.rl_data_path") -> list[RLPrompt]:
    """The prompts of ``path`` a run uses: every row read with :func:`read_row` (images under
    ``data.image_root``), then the ones over the prompt budget dropped. Both engines call it,
    so a config trains the same rows on either; ``setting`` names the config key in messages."""
    return fit_prompt_budget(load_prompts(config.locate(path), config.resolve(config.data.image_root)), budget, setting)  # type: ignore[arg-type]


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
