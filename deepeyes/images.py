"""Load and prepare images the way Qwen2.5-VL expects them.

Why here and not in each policy: the sandbox preload, the HF policy, the OpenAI policy
and the SFT converter must agree on decoding and sizing, and an undecodable image must
fail with the file named rather than deep inside a processor.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from qwen_vl_utils import smart_resize

#: Qwen2.5-VL's resize factor: patch 14 × spatial merge 2.
QWEN_FACTOR = 28
QWEN_MAX_ASPECT = 200


class ImageLoadError(ValueError):
    """An image cannot be read or decoded."""


def load_image(source: str | Path | bytes | Image.Image) -> Image.Image:
    """Decode a path, raw bytes, a base64 string or a ``data:`` URL into an RGB PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    where = "image bytes"
    try:
        if isinstance(source, bytes):
            data = source
        elif isinstance(source, str) and source.startswith("data:image"):
            where = "data URL"
            data = base64.b64decode(source.split(",", 1)[1])
        else:
            path = Path(source)
            where = str(path)
            if not path.is_file():
                raise ImageLoadError(f"image not found: {path}")
            data = path.read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, ImageLoadError):
            raise
        raise ImageLoadError(f"cannot decode {where}: {exc}") from exc
    return image.convert("RGB")


def prepare_for_qwen(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """Resize to Qwen's grid (sides multiple of 28, area within bounds); tiny images are upscaled."""
    width, height = image.size
    if max(width, height) / max(1, min(width, height)) > QWEN_MAX_ASPECT:
        raise ImageLoadError(f"image of size {width}x{height} exceeds Qwen2.5-VL's maximum aspect ratio {QWEN_MAX_ASPECT}")
    new_height, new_width = smart_resize(height, width, QWEN_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    if (new_width, new_height) == (width, height):
        return image
    return image.resize((new_width, new_height), Image.Resampling.BICUBIC)


def to_png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(to_png_bytes(image)).decode("ascii")


def fit_for_qwen(image: Image.Image, max_pixels: int) -> tuple[Image.Image, str | None]:
    """``image`` brought within Qwen2.5-VL's limits, and a note for the model when it changed.

    The limits are qwen-vl-utils ``smart_resize``'s: each side at least 28 px, aspect ratio
    at most 200, and area at most ``max_pixels``. An image within them is returned as is
    (the processor still snaps it to its 28-px grid). Past the aspect limit (or past what
    ``max_pixels`` allows with a 28-px short side) the short side is padded white, since no
    resize can fix a ratio; then the image is scaled down to ``max_pixels`` or up to a 28-px
    short side. Unlike :func:`prepare_for_qwen` this never raises for a decodable image:
    tool output must not abort a rollout. Raises :class:`ImageLoadError` for an empty image.
    """
    width, height = image.size
    if min(width, height) < 1:
        raise ImageLoadError(f"image of size {width}x{height} is empty")
    max_pixels = max(max_pixels, QWEN_FACTOR * QWEN_FACTOR)
    max_aspect = min(QWEN_MAX_ASPECT, max_pixels // (QWEN_FACTOR * QWEN_FACTOR))
    changes = []
    if max(width, height) / min(width, height) > max_aspect:
        short = -(-max(width, height) // max_aspect)  # ceil: the ratio ends at most max_aspect
        size = (width, short) if width > height else (short, height)
        padded = Image.new("RGB", size, (255, 255, 255))
        padded.paste(image.convert("RGB"), (0, 0))
        image = padded
        changes.append(f"padded to {size[0]}x{size[1]} (aspect ratio above {max_aspect})")
    w, h = image.size
    scale = 1.0
    if w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
    if min(w, h) * scale < QWEN_FACTOR:
        scale = QWEN_FACTOR / min(w, h)
    if scale != 1.0:
        new_size = (max(QWEN_FACTOR, int(w * scale)), max(QWEN_FACTOR, int(h * scale)))
        image = image.resize(new_size, Image.Resampling.BICUBIC)
        changes.append(f"resized to {new_size[0]}x{new_size[1]} (at least {QWEN_FACTOR} px a side, at most {max_pixels} pixels)")
    if not changes:
        return image, None
    return image, f"image of size {width}x{height} " + ", then ".join(changes)
