"""Where RL rows come from and what is checked before a step is spent on them.

The published DeepEyesV2 RL data is several parquet files (``perception_all_*.parquet``,
``reason.parquet``, ``search.parquet``, a V* validation file), fetched by hub name or laid
out by hand; verl takes them as a list. :func:`expand_data_files` turns what a user wrote
(a file, a folder, a glob, a comma-separated list or a hub data set id) into that list.

Two checks run before training, over training and validation files alike, so a bad row
fails in seconds instead of hours into a run:

- :func:`check_env_names`: each row's tool environment (``env_name``, the key verl's
  agent loop reads with ``tool_name_key``) must be one this framework serves; unknown
  names are reported with their row counts.
- :func:`filter_overlong_prompts`: rows whose prompt (text tokens plus the image and video
  tokens Qwen2.5-VL spends at the configured ``max_pixels``) exceeds the prompt budget are
  dropped with a count, as verl's ``data.filter_overlong_prompts`` does on a cluster.
"""

from __future__ import annotations

import glob
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pyarrow.parquet as pq
from PIL import Image
from qwen_vl_utils import smart_resize

from deepeyes.agent import VIDEO_TEMPORAL_PATCH
from deepeyes.hub import looks_like_repo_id, resolve
from deepeyes.images import QWEN_FACTOR
from deepeyes.rl.config import RLSetupError
from deepeyes.videos import VideoClip

logger = logging.getLogger(__name__)

#: Tool environments whose rows this framework's agent loop can roll out: ours, DeepEyesV2's
#: released RL data, and DeepEyes v1's (the zoom-in tool).
KNOWN_ENV_NAMES: frozenset[str] = frozenset({"deepeyes_agent", "deepeyes_v2", "visual_toolbox_v2"})
ENV_NAME_COLUMN = "env_name"

T = TypeVar("T")


class RLDataSourceError(RLSetupError):
    """The RL data files cannot be found, or rows fail a pre-training check."""


def expand_data_files(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The parquet files a data setting names, in a stable order.

    Args:
        spec: a parquet file, a folder (its ``*.parquet``, recursively), a glob pattern, a
            comma-separated list of any of these, a list of them, or a hub data set id
            (``honglyhly/DeepEyesV2_RL``), fetched into the hub cache.

    Raises:
        RLDataSourceError: an entry matches no parquet file.
    """
    entries = [spec] if isinstance(spec, (str, Path)) else list(spec)
    files: list[Path] = []
    for entry in entries:
        for part in (p.strip() for p in str(entry).split(",")):
            if not part:
                continue
            if any(ch in part for ch in "*?["):
                matched = sorted(Path(p) for p in glob.glob(part, recursive=True))
            else:
                path = Path(part).expanduser()
                if not path.exists() and looks_like_repo_id(part):
                    path = resolve(part, "dataset", what="rl_data_path")
                matched = sorted(path.rglob("*.parquet")) if path.is_dir() else [path] if path.is_file() else []
            matched = [p for p in matched if p.suffix == ".parquet"]
            if not matched:
                raise RLDataSourceError(f"RL data {part!r}: no parquet file there")
            files += [p.resolve() for p in matched]
    return list(dict.fromkeys(files))


def check_env_names(files: Iterable[Path], known: Iterable[str] = KNOWN_ENV_NAMES) -> Counter[str]:
    """Count each row's ``env_name`` over ``files``; fail on names this framework does not serve.

    Rows without the column (our own synthetic data before it was added, plain verl data)
    count as ``""`` and pass: the default environment serves them.

    Returns:
        Rows per environment name over all files.

    Raises:
        RLDataSourceError: some rows name an unknown environment; the message lists each
            unknown name with its row count and the files it occurs in.
    """
    known = set(known)
    counts: Counter[str] = Counter()
    where: dict[str, set[str]] = {}
    for file in files:
        schema_names = pq.read_schema(file).names
        if ENV_NAME_COLUMN not in schema_names:
            counts[""] += pq.read_metadata(file).num_rows
            continue
        for value in pq.read_table(file, columns=[ENV_NAME_COLUMN]).column(0).to_pylist():
            name = "" if value is None else str(value)
            counts[name] += 1
            where.setdefault(name, set()).add(file.name)
    unknown = {name: n for name, n in counts.items() if name and name not in known}
    if unknown:
        listing = "; ".join(f"{name!r}: {n} rows in {', '.join(sorted(where[name]))}" for name, n in sorted(unknown.items()))
        raise RLDataSourceError(f"unknown tool environment(s) in the RL data ({listing}); known: {', '.join(sorted(known))}")
    return counts


def image_token_count(size: tuple[int, int], min_pixels: int, max_pixels: int) -> int:
    """Vision tokens Qwen2.5-VL spends on an image of ``size`` (width, height) in pixels.

    The image is resized to a 28-pixel grid within ``[min_pixels, max_pixels]``
    (``qwen_vl_utils.smart_resize``) and each 28×28 cell becomes one token after the
    2×2 patch merge (Qwen2.5-VL technical report, §2.1).
    """
    width, height = size
    new_height, new_width = smart_resize(height, width, QWEN_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    return (new_height // QWEN_FACTOR) * (new_width // QWEN_FACTOR)


@dataclass(frozen=True)
class PromptBudget:
    """How a prompt is measured against ``max_prompt_length`` (tokens)."""

    max_prompt_length: int
    count_text_tokens: Callable[[str], int]
    min_pixels: int = 4 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    #: Frame area limits of the processor's video path (Qwen2.5-VL's video processor resizes
    #: frames within its own limits, apart from images'); a request's ``max_pixels`` lowers the upper one.
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 768 * 28 * 28

    def prompt_tokens(self, text: str, images: Sequence[Path]) -> int:
        total = self.count_text_tokens(text)
        for path in images:
            with Image.open(path) as image:
                total += image_token_count(image.size, self.min_pixels, self.max_pixels)
        return total

    def video_tokens(self, clip: VideoClip, max_pixels: int | None = None) -> int:
        """Vision tokens of a decoded video: one frame's grid cells per pair of frames
        (Qwen2.5-VL's temporal patch spans two frames; an odd last frame is repeated), the
        frames resized within the video limits, ``max_pixels`` (a request's) capping the upper one."""
        upper = min(max_pixels, self.video_max_pixels) if max_pixels else self.video_max_pixels
        cells = image_token_count(clip.frames[0].size, min(self.video_min_pixels, upper), upper)
        return math.ceil(len(clip.frames) / VIDEO_TEMPORAL_PATCH) * cells


def filter_overlong_prompts(
    rows: Sequence[T],
    text: Callable[[T], str],
    images: Callable[[T], Sequence[Path]],
    budget: PromptBudget,
    source: str,
    video_tokens: Callable[[T], int] = lambda row: 0,
) -> list[T]:
    """Keep the rows whose prompt fits ``budget``; log how many were dropped and the longest seen.

    ``video_tokens`` counts a row's video tokens (:meth:`PromptBudget.video_tokens` over its decoded videos).
    """
    kept, dropped, longest = [], 0, 0
    for row in rows:
        tokens = budget.prompt_tokens(text(row), images(row)) + video_tokens(row)
        longest = max(longest, tokens)
        if tokens <= budget.max_prompt_length:
            kept.append(row)
        else:
            dropped += 1
    if dropped:
        logger.warning(
            "%s: dropped %d of %d prompts longer than max_prompt_length=%d tokens (longest %d)",
            source, dropped, len(rows), budget.max_prompt_length, longest,
        )
    if not kept:
        raise RLDataSourceError(f"{source}: all {len(rows)} prompts exceed max_prompt_length={budget.max_prompt_length} tokens")
    return kept
