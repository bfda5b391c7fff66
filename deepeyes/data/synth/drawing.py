"""Shared drawing helpers: a fixed palette and Pillow's bundled font.

Pillow's built-in FreeType font is used (not a system font) so that the same Pillow
version renders the same pixels on every machine.
"""

from __future__ import annotations

import random
from functools import cache

from PIL import Image, ImageColor, ImageDraw, ImageFont

RGB = tuple[int, int, int]

#: Saturated colours far apart in RGB (every pair differs by ≥ 90 in some channel), so code
#: can separate them with a simple tolerance. They are the CSS named colours, exactly as
#: ``PIL.ImageColor.getrgb`` gives them, so recorded code can name a colour it read in the
#: question instead of recalling its RGB triple.
PALETTE: dict[str, RGB] = {
    name: ImageColor.getrgb(name)  # type: ignore[misc]  # a 3-tuple for a name
    for name in ("red", "green", "blue", "yellow", "purple", "orange")
}

BACKGROUND: RGB = (255, 255, 255)
INK: RGB = (20, 20, 20)


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def new_canvas(width: int, height: int, color: RGB = BACKGROUND) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (width, height), color)
    return image, ImageDraw.Draw(image)


def pastel(rng: random.Random) -> RGB:
    """A light background tint that no palette colour mask can pick up."""
    return (rng.randint(225, 250), rng.randint(225, 250), rng.randint(225, 250))


def text_size(text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = font(size).getbbox(text)
    return right - left, bottom - top
