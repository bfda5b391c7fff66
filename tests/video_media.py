"""Small videos made by the tests themselves: a white square moving right on black, as an
MP4 written with PyAV (the decoder LLaMA-Factory and :mod:`deepeyes.videos` use) or as a
folder of PNG frames. Where the square is in frame ``i`` is known (:func:`square_box`), so a
test can check which frame a tool or policy saw."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

FRAME_SIZE = (64, 48)


def square_box(step: int) -> tuple[int, int, int, int]:
    """The square's box ``(x1, y1, x2, y2)`` in frame ``step``: 4 px further right each frame."""
    return (4 + 4 * step, 16, 16 + 4 * step, 28)


def frame(step: int) -> Image.Image:
    image = Image.new("RGB", FRAME_SIZE)
    image.paste((255, 255, 255), square_box(step))
    return image


def write_frames(folder: Path, count: int = 6) -> list[Path]:
    """``count`` PNG frames ``000.png``, ``001.png``, … in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in range(count):
        path = folder / f"{step:03d}.png"
        frame(step).save(path)
        paths.append(path)
    return paths


def write_mp4(path: Path, count: int = 8, fps: int = 4) -> Path:
    """The same motion as an H.264 (or MPEG-4) file of ``count`` frames at ``fps``."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = FRAME_SIZE[0], FRAME_SIZE[1], "yuv420p"
        for step in range(count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame(step)), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def square_left_edge(image: Image.Image) -> int:
    """The x of the first bright column of ``image`` (where the square starts), -1 if none."""
    columns = np.flatnonzero(np.asarray(image.convert("L")).max(axis=0) > 128)
    return int(columns[0]) if columns.size else -1
