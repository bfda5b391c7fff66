"""Load and prepare images the way Qwen2.5-VL expects them.

Why here and not in each policy: the sandbox preload, the HF policy, the OpenAI policy
and the SFT converter must agree on decoding and sizing, and an undecodable image must
fail with the file named rather than deep inside a processor. For the same reason the two
pixel frames of an image (the file's and the one the model sees after resizing) and the
conversion of boxes between them live here (:class:`ImageFrame`), and nowhere else.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


#: Qwen2.5-VL processor's default pixel budget (``Qwen2VLImageProcessor``: ``min_pixels``
#: 56·56 = 4·28², ``max_pixels`` 28·28·1280 in transformers, 16384·28² in qwen-vl-utils).
QWEN_DEFAULT_MIN_PIXELS = 4 * QWEN_FACTOR * QWEN_FACTOR
QWEN_DEFAULT_MAX_PIXELS = 16384 * QWEN_FACTOR * QWEN_FACTOR

#: A box ``(x1, y1, x2, y2)`` in pixels: left, top, right, bottom; ``x2``/``y2`` exclusive edges.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ImageFrame:
    """The two pixel frames of one image: the file's (``original``) and the model's (``processed``).

    Qwen2.5-VL writes boxes in absolute pixels of the image it was fed, which the processor
    resized to a 28-pixel grid within ``[min_pixels, max_pixels]``
    (``qwen_vl_utils.smart_resize``; ``transformers`` ``Qwen2VLImageProcessor`` applies the
    same rule). Data stores boxes in original pixels; this class is the one place where a
    box crosses between the two frames (data conversion, the grounding reward, the zoom
    tool and the demo all call it). Sizes are ``(width, height)`` in pixels; scaling is
    per axis, ``x_processed = x_original · processed_width / original_width``.
    """

    original: tuple[int, int]
    processed: tuple[int, int]

    def __post_init__(self) -> None:
        for name in ("original", "processed"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"ImageFrame.{name} must be (width, height) with both >= 1, got {size}")

    @classmethod
    def identity(cls, size: tuple[int, int]) -> ImageFrame:
        """A frame where the model sees the file's pixels (the text route: no image to measure)."""
        return cls(tuple(size), tuple(size))  # type: ignore[arg-type]

    @classmethod
    def for_qwen(
        cls, size: tuple[int, int], min_pixels: int = QWEN_DEFAULT_MIN_PIXELS, max_pixels: int = QWEN_DEFAULT_MAX_PIXELS
    ) -> ImageFrame:
        """The frame of an image of ``size`` (width, height) fed to Qwen2.5-VL at these pixel limits.

        The processed size is ``qwen_vl_utils.smart_resize(height, width, 28, min_pixels,
        max_pixels)``, the rule :func:`prepare_for_qwen` resizes with. Raises
        :class:`ImageLoadError` past Qwen2.5-VL's aspect-ratio limit (200).
        """
        width, height = size
        if max(width, height) / max(1, min(width, height)) > QWEN_MAX_ASPECT:
            raise ImageLoadError(f"image of size {width}x{height} exceeds Qwen2.5-VL's maximum aspect ratio {QWEN_MAX_ASPECT}")
        new_height, new_width = smart_resize(height, width, QWEN_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
        return cls((width, height), (new_width, new_height))

    @property
    def scale(self) -> tuple[float, float]:
        """``(sx, sy)``: processed pixels per original pixel along each axis."""
        return self.processed[0] / self.original[0], self.processed[1] / self.original[1]

    def to_processed(self, box: Box) -> Box:
        """``box`` in original pixels → the model's frame (floats; round for a model target)."""
        sx, sy = self.scale
        return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)

    def to_original(self, box: Box) -> Box:
        """``box`` in the model's frame → original pixels (floats)."""
        sx, sy = self.scale
        return (box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy)

    def to_dict(self) -> dict[str, list[int]]:
        return {"original": list(self.original), "processed": list(self.processed)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageFrame:
        """Inverse of :meth:`to_dict`; ValueError names a missing or malformed size."""
        try:
            return cls(tuple(int(v) for v in data["original"]), tuple(int(v) for v in data["processed"]))  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"an image frame is {{'original': [w, h], 'processed': [w, h]}}, got {data!r}") from exc


def llamafactory_size(size: tuple[int, int], image_max_pixels: int, image_min_pixels: int) -> tuple[int, int]:
    """The size LLaMA-Factory hands the processor after its own pre-resize (``width, height``).

    LLaMA-Factory's ``mm_plugin`` ``_preprocess_image`` scales an image whose area exceeds
    ``image_max_pixels`` (or falls below ``image_min_pixels``) by ``sqrt(limit / area)``,
    truncating each side to an int, before the Qwen2.5-VL processor's own ``smart_resize``:
    the frame an SFT model learns boxes in is ``ImageFrame.for_qwen`` of this size.
    """
    width, height = size
    if width * height > image_max_pixels:
        factor = math.sqrt(image_max_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    if width * height < image_min_pixels:
        factor = math.sqrt(image_min_pixels / (width * height))
        width, height = int(width * factor), int(height * factor)
    return width, height
