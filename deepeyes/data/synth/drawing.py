"""Shared drawing helpers: a fixed palette and Pillow's bundled font.

Pillow's built-in FreeType font is used (not a system font) so that the same Pillow
version renders the same pixels on every machine.
"""

from __future__ import annotations

import random
from functools import cache

from PIL import Image, ImageDraw, ImageFont

RGB = tuple[int, int, int]

#: Saturated colours far apart in RGB, so code can separate them with a simple tolerance.
PALETTE: dict[str, RGB] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
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
