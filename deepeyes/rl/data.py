"""RL prompts: the one reader of RL rows, for both engines, and the step order.

The rows follow verl's conventions (DESIGN §5) so the same file feeds verl's trainer on a
cluster. :func:`read_row` is the only place a row becomes a prompt: the local engine reads
parquet rows with it (:func:`load_prompts`), verl's launch reads the same rows with it
before copying them for verl (:mod:`deepeyes.rl.verl_launch`), and our agent loop inside
verl reads verl's dataset items with it (:mod:`deepeyes.rl.verl_agent_loop`). So a row
means the same on both engines: the same question, images, videos, ground truth and group
key, and the same errors — a missing ground truth, image or video names the file and row.

Videos follow verl's row convention (``RLHFDataset``'s ``videos`` column, one ``<video>``
placeholder each in the prompt): an entry is a path (a video file or a folder of frames), a
list of frame paths, or a dict whose ``video`` key holds either, with optional ``fps``,
``max_frames`` and ``max_pixels`` (``qwen_vl_utils``' names, which verl passes on) over the
config's ``data.video_*`` defaults. Relative paths resolve as images do (``data.image_root``).

The order is a seeded permutation per epoch, so a resumed run sees the same prompts at
the same step as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
from deepeyes.videos import VideoClip, VideoLoadError, VideoSampling, load_video

#: ``extra_info`` keys kept as trajectory metadata (the behaviour report groups by them; the
#: grounding reward reads ``image_frame``).
METADATA_KEYS: tuple[str, ...] = ("task", "answer_type", "choices", "required_tools", "image_frame")
#: Keys of a ``videos`` entry that set how its frames are sampled (``qwen_vl_utils``' names).
VIDEO_SAMPLING_KEYS: tuple[str, ...] = ("fps", "max_frames", "max_pixels")

#: A row's video as the loop takes it: a video file or frame folder, or a list of frame files.
VideoSource = Path | list[Path]


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
    videos: list[VideoSource] = field(default_factory=list)
    #: How this row's videos are sampled (its entries' settings over ``data.video_*``).
    video_sampling: VideoSampling = field(default_factory=VideoSampling)

    @property
    def where(self) -> str:
        """The row in messages: ``file: row N`` when it came from a file, else its uid."""
        return f"{self.file}: row {self.row}" if self.file is not None else f"prompt {self.uid}"

    def load_videos(self) -> list[VideoClip]:
        """The row's videos decoded as the loop decodes them.

        Raises:
            RLDataError: a video cannot be decoded (names the row and the file).
        """
        try:
            return [load_video(video, self.video_sampling) for video in self.videos]
        except VideoLoadError as exc:
            raise RLDataError(f"{self.where}: {exc}") from exc

    def request(self, sample: int, step: int | None = None) -> AgentRequest:
        """The agent request of the prompt's ``sample``-th rollout (at training ``step`` when given).

        The row's videos come decoded (:meth:`load_videos`) with frames over the row's
        ``max_pixels`` scaled down (:func:`deepeyes.videos.load_video`), as every front end
        hands a request's videos to the loop, so both engines' policies and the tools see the same frames.

        Raises:
            RLDataError: a video cannot be decoded (names the row and the file).
        """
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
            videos=self.load_videos(),
            video_sampling=self.video_sampling,
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
    return text.replace(wire.IMAGE_PLACEHOLDER, "").replace(wire.VIDEO_PLACEHOLDER, "").strip()


def _media_entries(row: Mapping[str, Any], kind: str) -> list[Any]:
    """The row's ``kind`` (``image`` / ``video``) entries: its ``images`` / ``videos`` column, or
    (verl's items, which drop those columns) the ``kind`` parts of its messages."""
    column = f"{kind}s"
    if row.get(column) is not None:
        return list(plain(row[column]))
    return [part for message in _messages(row, "raw_prompt") for part in _parts(message.get("content")) if part.get("type") == kind]


def _find(value: str, roots: Sequence[Path], where: str, noun: str, allow_folder: bool = False) -> Path:
    """The file (or, with ``allow_folder``, frame folder) ``value`` names: absolute as written,
    relative under the first root that has it."""
    path = Path(value)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    for candidate in candidates:
        if candidate.is_file() or (allow_folder and candidate.is_dir()):
            return candidate
    searched = "" if path.is_absolute() else f" under {[str(r) for r in roots]} (set data.image_root to the folder the paths start from)"
    raise RLDataError(f"{where}: {noun} {value!r} not found{searched}")


def _image_path(entry: Any, roots: Sequence[Path], where: str) -> Path:
    """The file an image entry names."""
    value = entry.get("image") if isinstance(entry, Mapping) else entry
    if not isinstance(value, str) or not value:
        raise RLDataError(f"{where}: image entry {str(entry)[:80]!r} is not a path (expected {{'image': 'path'}})")
    return _find(value, roots, where, "image")


def _video_source(entry: Any, roots: Sequence[Path], where: str) -> VideoSource:
    """The video file or frame folder a video entry names, or its frame files."""
    value = entry.get("video") if isinstance(entry, Mapping) else entry
    if isinstance(value, str) and value:
        return _find(value, roots, where, "video", allow_folder=True)
    if isinstance(value, list) and value and all(isinstance(frame, str) and frame for frame in value):
        return [_find(frame, roots, where, "video frame") for frame in value]
    raise RLDataError(
        f"{where}: video entry {str(entry)[:80]!r} is not a path or a list of frame paths (expected {{'video': 'path'}})"
    )


def _video_sampling(entries: list[Any], default: VideoSampling, where: str) -> VideoSampling:
    """The sampling of a row's videos: the entries' ``fps`` / ``max_frames`` / ``max_pixels`` over ``default``.

    One request samples all its videos alike, so entries of one row that ask for different
    settings are an error.
    """
    settings = [
        {key: entry[key] for key in VIDEO_SAMPLING_KEYS if entry.get(key) is not None}
        for entry in entries
        if isinstance(entry, Mapping)
    ]
    distinct = {tuple(sorted(s.items())) for s in settings}
    if len(distinct) > 1:
        raise RLDataError(f"{where}: its videos ask for different sampling ({settings}); a row samples all its videos alike")
    chosen = settings[0] if settings else {}
    try:
        return VideoSampling(
            fps=float(chosen.get("fps", default.fps)),
            max_frames=int(chosen.get("max_frames", default.max_frames)),
            max_pixels=int(chosen["max_pixels"]) if "max_pixels" in chosen else default.max_pixels,
        )
    except (TypeError, ValueError) as exc:
        raise RLDataError(f"{where}: video sampling {chosen}: {exc}") from exc


def read_row(
    row: Mapping[str, Any],
    where: str,
    roots: Sequence[Path] = (),
    position: int = 0,
    uid_prefix: str = "",
    video_sampling: VideoSampling | None = None,
) -> RLPrompt:
    """One RL row (a parquet row, or an item of verl's ``RLHFDataset``) as a prompt.

    ``where`` names the row in errors (``file: row N``); ``roots`` are where relative image
    and video paths are looked up (``data.image_root``, else the parquet's folder and its
    parent); ``position`` is the row's index in its file, the group key when the row has no
    ``extra_info.id`` / ``index``; ``uid_prefix`` tells the parts of a multi-file data set
    apart; ``video_sampling`` is the sampling of videos whose entries do not set their own
    (default: :class:`~deepeyes.videos.VideoSampling`'s).

    Videos are found here, not decoded (:meth:`RLPrompt.load_videos` decodes them).

    Raises:
        RLDataError: no ground truth, no question, an image that is not a file, a video that
            is neither a file nor a frame folder, or a malformed video entry.
    """
    truth = plain((row.get("reward_model") or {}).get("ground_truth"))
    if truth is None or truth == "":
        raise RLDataError(f"{where}: no reward_model.ground_truth")
    extra = plain(row.get("extra_info")) or {}
    # A row prepared for verl carries the uid it was given here, so both engines group alike.
    uid = str(extra.get("uid") or uid_prefix + str(extra.get("id") or extra.get("index", position)))
    videos = _media_entries(row, "video")
    return RLPrompt(
        uid=uid,
        question=_question(row, where),
        images=[_image_path(entry, roots, where) for entry in _media_entries(row, "image")],
        ground_truth=str(truth),
        data_source=str(row["data_source"]) if row.get("data_source") is not None else None,
        sample_index=str(extra.get("sample_index") or extra.get("id") or uid),
        metadata={key: extra[key] for key in METADATA_KEYS if extra.get(key) is not None},
        videos=[_video_source(entry, roots, where) for entry in videos],
        video_sampling=_video_sampling(videos, video_sampling or VideoSampling(), where),
    )


def image_roots(file: Path, image_root: str | Path | None) -> list[Path]:
    """Where relative image and video paths of ``file`` resolve: ``data.image_root`` alone when set, else the file's folder and its parent."""
    return [Path(image_root)] if image_root else [file.parent, file.parent.parent]


def data_files(path: str | Path | list[str | Path]) -> list[Path]:
    """The parquet files ``path`` names, with every row's tool environment checked."""
    try:
        files = expand_data_files(path if isinstance(path, list) else str(path))
    except RLDataSourceError as exc:
        raise RLDataError(f"{exc} (make the sample data with `python -m deepeyes.data.synth --out data/sample`)") from exc
    check_env_names(files)
    return files


def load_prompts(
    path: str | Path | list[str | Path], image_root: str | Path | None = None, video_sampling: VideoSampling | None = None
) -> list[RLPrompt]:
    """Read RL parquet rows (verl conventions) into prompts with :func:`read_row`.

    ``path`` is anything :func:`~deepeyes.rl.data_sources.expand_data_files` accepts: one
    file, a folder of parts, a glob, a comma-separated list or a hub data set id. Every
    row's tool environment is checked first (:func:`~deepeyes.rl.data_sources.check_env_names`).
    ``video_sampling``: the default sampling of the rows' videos (``data.video_*``).
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
            prompt = read_row(row, f"{file}: row {index}", roots, position=index, uid_prefix=prefix, video_sampling=video_sampling)
            prompt.file, prompt.row = file, index
            prompts.append(prompt)
    return prompts


def prompt_budget(config: RLConfig) -> PromptBudget:
    """``data.max_prompt_length`` measured with the base model's tokenizer and image and video limits.

    The processor of ``model.base_model`` (a directory or hub id) gives the tokenizer, the
    ``min_pixels`` / ``max_pixels`` the policy resizes images to, and its video processor's
    frame limits (the SFT adapter changes none of them).

    Raises:
        FileNotFoundError: the base model cannot be found or fetched.
    """
    from transformers import AutoProcessor

    from deepeyes.hub import resolve as hub_resolve

    processor = AutoProcessor.from_pretrained(hub_resolve(config.locate(config.model.base_model), "model", what="model.base_model"))  # type: ignore[arg-type]
    size = processor.image_processor.size
    video_size = processor.video_processor.size
    tokenizer = processor.tokenizer
    return PromptBudget(
        max_prompt_length=config.data.max_prompt_length,
        count_text_tokens=lambda text: len(tokenizer(text).input_ids),
        min_pixels=int(size["shortest_edge"]),
        max_pixels=int(size["longest_edge"]),
        video_min_pixels=int(video_size["shortest_edge"]),
        video_max_pixels=int(video_size["longest_edge"]),
    )


def fit_prompt_budget(prompts: list[RLPrompt], budget: PromptBudget, source: str) -> list[RLPrompt]:
    """The prompts whose first model input fits ``budget``; the number dropped is logged.

    A prompt is measured as the agent loop first sends it: the tool-use system prompt, the
    user turn (:func:`deepeyes.prompts.user_prompt`), its images' vision tokens and its
    videos' (decoded with the row's sampling, as the loop will decode them); chat template
    markers (a few tokens per turn) are not counted.

    Raises:
        RLDataSourceError: every prompt is too long.
        RLDataError: a video cannot be decoded (names the row and the file).
    """
    from deepeyes.prompts import system_prompt, user_prompt

    system = system_prompt()
    return filter_overlong_prompts(
        prompts,
        lambda p: system + "\n" + user_prompt(p.question, len(p.images), len(p.videos)),
        lambda p: p.images,
        budget,
        source,
        video_tokens=lambda p: sum(budget.video_tokens(clip, p.video_sampling.max_pixels) for clip in p.load_videos()),
    )


def run_prompts(config: RLConfig, path: str, budget: PromptBudget, setting: str = "data.rl_data_path") -> list[RLPrompt]:
    """The prompts of ``path`` a run uses: every row read with :func:`read_row` (images and videos
    under ``data.image_root``, videos sampled by ``data.video_*`` unless a row says otherwise),
    then the ones over the prompt budget dropped. Both engines call it, so a config trains the
    same rows on either; ``setting`` names the config key in messages."""
    prompts = load_prompts(config.locate(path), config.resolve(config.data.image_root), config.data.video_sampling())  # type: ignore[arg-type]
    return fit_prompt_budget(prompts, budget, setting)


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
