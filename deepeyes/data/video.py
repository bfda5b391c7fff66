"""Videos in SFT samples, in LLaMA-Factory's video format, and the checks they must pass.

LLaMA-Factory takes a sample's ``videos`` column as a list with one entry per ``<video>``
placeholder; an entry is either a video file it decodes with PyAV, or a list of frame
image paths (frames already sampled). It only finds out at training time that a file is
missing or undecodable, so the converter opens every video first with the same decoder
(PyAV) and reports what it cannot read.

A folder of frame images is accepted as a video too (the same input ``deepeyes.infer``
takes) and becomes its sorted list of frame paths, because LLaMA-Factory itself cannot
open a folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import av

from deepeyes.data.formats import save_png
from deepeyes.videos import FRAME_SUFFIXES, sample_indices

#: A video as LLaMA-Factory reads it: a file path, or a list of frame image paths.
Video = str | list[str]

# Defect classes, as they appear in the validation report.
VIDEO_MISSING = "video_missing"
VIDEO_UNREADABLE = "video_unreadable"

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class VideoFormatError(ValueError):
    """A record's ``videos`` value is not a list of paths / frame-path lists."""


def parse_videos(value: object) -> list[Video]:
    """A record's ``videos`` value as a list of videos, in placeholder order.

    Accepts one path, a list of paths, or a list mixing paths and frame lists; raises
    :class:`VideoFormatError` for anything else (numbers, empty strings, nested dicts).
    """
    if value is None or value == "" or value == []:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    videos: list[Video] = []
    for position, item in enumerate(items):
        if isinstance(item, str) and item:
            videos.append(item)
        elif isinstance(item, (list, tuple)) and all(isinstance(frame, str) and frame for frame in item):
            videos.append(list(item))
        else:
            raise VideoFormatError(f"videos[{position}] must be a file path or a list of frame image paths")
    return videos


def resolve_video(video: Video, root: Path) -> Video:
    """Absolute paths (so LLaMA-Factory finds them whatever its ``media_dir``); a folder
    becomes its sorted frame files; URLs are left for :class:`VideoChecker` to reject."""
    if isinstance(video, list):
        return [_absolute(frame, root) for frame in video]
    path = _absolute(video, root)
    folder = Path(path)
    if folder.is_dir():
        return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
    return path


def _absolute(path: str, root: Path) -> str:
    if _URL.match(path):
        return path
    candidate = Path(path)
    return str((candidate if candidate.is_absolute() else root / candidate).resolve())


class VideoChecker:
    """Decodes each distinct video file once (samples share videos) and remembers the verdict.

    Frames of a frame-list video go through ``check_frame`` (the converter's image check,
    ``path -> None | (kind, detail)``), so a frame is held to the same rules as an image;
    its verdict is reported under the video kinds.
    """

    def __init__(self, check_frame: Callable[[str], tuple[str, str] | None]) -> None:
        self._check_frame = check_frame
        self._verdicts: dict[str, tuple[str, str] | None] = {}

    def check(self, video: Video) -> tuple[str, str] | None:
        """``None`` when LLaMA-Factory can read ``video``, else ``(kind, detail)``."""
        if not isinstance(video, list):
            if _URL.match(video):
                return VIDEO_MISSING, f"{video}: URLs are not fetched (nothing downloads at run time); use local files"
            if video not in self._verdicts:
                self._verdicts[video] = _decode(Path(video))
            return self._verdicts[video]
        if not video:
            return VIDEO_UNREADABLE, "a video given as frames has no frame images (empty list or empty folder)"
        for position, frame in enumerate(video):
            verdict = self._check_frame(frame)
            if verdict:
                kind = VIDEO_UNREADABLE if Path(frame).is_file() else VIDEO_MISSING
                return kind, f"frame {position}: {verdict[1]}"
        return None


def _decode(path: Path) -> tuple[str, str] | None:
    """Decode every frame of the first video stream, as LLaMA-Factory's Qwen2-VL plugin does
    (it decodes the whole stream and keeps the sampled frames), so a file that breaks
    halfway is caught here rather than in the middle of a training run."""
    if not path.is_file():
        return VIDEO_MISSING, f"{path}: no such file"
    try:
        with av.open(str(path), "r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                return VIDEO_UNREADABLE, f"{path}: no video stream"
            decoded = sum(1 for _ in container.decode(stream))
    except (av.FFmpegError, OSError, ValueError) as exc:  # what PyAV raises for bad containers and streams
        return VIDEO_UNREADABLE, f"{path}: {type(exc).__name__}: {exc}"
    if decoded == 0:
        return VIDEO_UNREADABLE, f"{path}: no frame could be decoded"
    return None


def is_frame_list(video: Video) -> bool:
    return isinstance(video, list)


def extract_frames(path: str, out_dir: Path, fps: float, maxlen: int) -> list[str]:
    """Decode the frames LLaMA-Factory would sample from the file ``path`` (see
    :func:`deepeyes.videos.sample_indices`) and write them as PNGs under ``out_dir``; returns their paths.

    Needed because one dataset column cannot hold both kinds of video: Arrow, which
    LLaMA-Factory loads the JSON with, refuses a ``videos`` column mixing paths and lists.
    Raises what PyAV raises for an unreadable file (callers extract only checked videos).
    """
    target = out_dir / hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]
    with av.open(path, "r") as container:
        stream = next(s for s in container.streams if s.type == "video")
        duration = float(stream.duration * stream.time_base) if stream.duration is not None else 0.0
        wanted = set(sample_indices(stream.frames, duration, fps, maxlen))
        frames = [frame.to_image() for index, frame in enumerate(container.decode(stream)) if index in wanted]
    paths = []
    for position, image in enumerate(frames):
        frame_path = target / f"{position:05d}.png"
        save_png(image, frame_path)
        paths.append(str(frame_path))
    return paths
