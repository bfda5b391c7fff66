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
