"""Videos as the agent loop, the policies and the tools see them: sampled frames with timestamps.

Why one module: Qwen2.5-VL takes a video as a list of frames sampled at some ``fps``
(``qwen_vl_utils.process_vision_info``), and the HF policy, the OpenAI policy, the code
tool's kernel, the frame-selection tool and the trajectory record must agree on which
frames those are and at what times, or a frame the model asks for by time is not the one
it saw. A video is decoded once, here, into a :class:`VideoClip`; everything downstream
reads its frames and timestamps.

Accepted sources (:data:`VideoInput`): a video file (decoded with PyAV, the decoder
LLaMA-Factory and torchvision use), a folder of frame images (sorted by name), a list of
frame images or image paths, or a :class:`VideoClip` already loaded. URLs are not fetched
here (nothing downloads unless the user allows it; the OpenAI policy may pass a URL on).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from qwen_vl_utils import smart_resize

from deepeyes.images import QWEN_FACTOR, ImageLoadError, load_image

#: Suffixes taken as frames when a folder is given as a video.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: ``qwen_vl_utils``' default sampling rate (frames per second of video).
DEFAULT_FPS = 2.0
#: Frames kept from one video by default: the tiny CPU model's budget (``qwen_vl_utils``
#: allows up to 768 on a real model; raise it per request with :class:`VideoSampling`).
DEFAULT_MAX_FRAMES = 16

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class VideoLoadError(ValueError):
    """A video cannot be read: missing file, no video stream, undecodable, no frames, or a URL."""


@dataclass(frozen=True)
class VideoSampling:
    """How frames are sampled from a video file, per request (defaults: ``qwen_vl_utils``' fps).

    ``fps``: frames kept per second of video; ``max_frames``: at most this many, spread
    evenly over the whole video; ``max_pixels``: area limit of one frame in the model's
    processor (None: the processor's own video limit).
    """

    fps: float = DEFAULT_FPS
    max_frames: int = DEFAULT_MAX_FRAMES
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")


@dataclass
class VideoClip:
    """A decoded video: the sampled frames and when each was shown.

    ``frames``: RGB images, in time order; ``timestamps``: seconds from the start of the
    video, one per frame, non-decreasing; ``source``: the file or folder it came from
    (``"<in-memory>"`` for frames given as images).
    """

    source: str
    frames: list[Image.Image]
    timestamps: list[float]

    def __post_init__(self) -> None:
        if not self.frames:
            raise VideoLoadError(f"{self.source}: a video needs at least one frame")
        if len(self.timestamps) != len(self.frames):
            raise ValueError(f"{self.source}: {len(self.frames)} frame(s) but {len(self.timestamps)} timestamp(s)")

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sampled clip (what the model's temporal positions use)."""
        span = self.timestamps[-1] - self.timestamps[0]
        return (len(self.frames) - 1) / span if span > 0 else DEFAULT_FPS

    def describe(self) -> dict[str, Any]:
        """What the trajectory record keeps of a video: its source and frame count."""
        return {"source": self.source, "frames": len(self.frames)}


#: What a request may give as a video.
VideoInput = str | Path | list[Image.Image | str | Path] | VideoClip


def sample_indices(total_frames: int, duration_s: float, fps: float, max_frames: int) -> list[int]:
    """Indices of the frames kept from a file of ``total_frames`` frames lasting ``duration_s``:
    ``fps`` per second of video, at most ``max_frames`` and at most every frame, spread
    evenly from first to last (LLaMA-Factory's ``_get_video_sample_indices`` rule, so SFT
    data and the loop sample the same frames); ``total_frames == 0`` (unknown) keeps the
    first ``max_frames``."""
    if total_frames == 0:
        return list(range(max_frames))
    count = min(total_frames, max_frames, max(1, math.floor(duration_s * fps)))
    return [int(i) for i in np.linspace(0, total_frames - 1, count).astype(np.int32)]


def load_video(source: VideoInput, sampling: VideoSampling | None = None) -> VideoClip:
    """Decode ``source`` into a :class:`VideoClip` sampled by ``sampling``.

    A file keeps the frames :func:`sample_indices` picks, stamped with their presentation
    times; frames given as a folder or a list are taken as already sampled at
    ``sampling.fps`` (frame ``i`` at ``i / fps`` seconds) and thinned evenly to
    ``max_frames``. A :class:`VideoClip` is taken as it is. Frames over
    ``sampling.max_pixels`` are then scaled down (:func:`limit_pixels`), so every front end
    hands the loop, the tools and the model the same frames.

    Raises:
        VideoLoadError: a URL, a missing path, a file without a video stream or with no
            decodable frame, an empty folder or list, or a frame image that cannot be read
            (the message names the file).
    """
    sampling = sampling or VideoSampling()
    return limit_pixels(_decode(source, sampling), sampling.max_pixels)


def _decode(source: VideoInput, sampling: VideoSampling) -> VideoClip:
    if isinstance(source, VideoClip):
        return source
    if isinstance(source, list):
        return _from_frames("<in-memory>" if any(isinstance(f, Image.Image) for f in source) else "<frames>", source, sampling)
    text = str(source)
    if _URL.match(text):
        raise VideoLoadError(f"{text}: URLs are not fetched (nothing downloads at run time); give a local file or folder")
    path = Path(text)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES)
        if not frames:
            raise VideoLoadError(f"{path}: a folder given as a video holds no frame images ({', '.join(FRAME_SUFFIXES)})")
        return _from_frames(str(path), list(frames), sampling)
    if not path.is_file():
        raise VideoLoadError(f"video not found: {path}")
    return _decode_file(path, sampling)


def _from_frames(source: str, frames: list[Image.Image | str | Path], sampling: VideoSampling) -> VideoClip:
    if not frames:
        raise VideoLoadError(f"{source}: a video given as frames has no frame")
    keep = sample_indices(len(frames), len(frames) / sampling.fps, sampling.fps, sampling.max_frames)
    try:
        images = [load_image(frames[i]) for i in keep]
    except ImageLoadError as exc:
        raise VideoLoadError(f"{source}: frame cannot be read: {exc}") from exc
    return VideoClip(source, images, [i / sampling.fps for i in keep])


def _decode_file(path: Path, sampling: VideoSampling) -> VideoClip:
    try:
        with av.open(str(path), "r") as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise VideoLoadError(f"{path}: no video stream")
            duration = float(stream.duration * stream.time_base) if stream.duration is not None else 0.0
            wanted = set(sample_indices(stream.frames, duration, sampling.fps, sampling.max_frames))
            frames: list[Image.Image] = []
            times: list[float] = []
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    frames.append(frame.to_image().convert("RGB"))
                    times.append(float(frame.time) if frame.time is not None else index / sampling.fps)
    except (av.FFmpegError, OSError) as exc:  # what PyAV raises for bad containers and streams
        raise VideoLoadError(f"{path}: cannot decode: {type(exc).__name__}: {exc}") from exc
    if not frames:
        raise VideoLoadError(f"{path}: no frame could be decoded")
    return VideoClip(str(path), frames, times)


def limit_pixels(clip: VideoClip, max_pixels: int | None) -> VideoClip:
    """``clip`` with frames of more than ``max_pixels`` pixels scaled down onto Qwen's grid (a request's limit).

    Unlike :func:`deepeyes.policies.video.fit_clip` this never enlarges a frame, and a clip within the limit (or
    ``max_pixels`` None) comes back unchanged: the model's processor still applies its own
    bounds. What the model will see is then what the tools see. A side is never cut below
    28 px (``smart_resize`` rounds a short side of a tight limit down to 0).
    """
    width, height = clip.frames[0].size
    if max_pixels is None or width * height <= max_pixels:
        return clip
    new_height, new_width = smart_resize(height, width, QWEN_FACTOR, min_pixels=QWEN_FACTOR * QWEN_FACTOR, max_pixels=max_pixels)
    new_height, new_width = max(QWEN_FACTOR, new_height), max(QWEN_FACTOR, new_width)
    return VideoClip(clip.source, [frame.resize((new_width, new_height), Image.Resampling.BICUBIC) for frame in clip.frames], list(clip.timestamps))
