"""Helpers shared by the search tests: small corpora and synthetic pictures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def write_corpus(path: Path, documents: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    return path


CRAFTS = ["glassblowing", "saltpans", "weaving", "tea gardens", "clockmaking", "boatbuilding"]


def town_documents(count: int) -> list[dict]:
    return [
        {
            "title": f"Town of Quillmere {i:03d}",
            "link": f"https://atlas.example/towns/{i}",
            "text": f"Quillmere {i:03d} lies on the river Aster. Founded in {1700 + i}, the town is known for its "
            f"{CRAFTS[i % len(CRAFTS)]}. Its mayor is Ottoline Varga{i:03d}.",
            "date": f"20{10 + i % 10}-01-0{1 + i % 9}",
        }
        for i in range(count)
    ]


# ----------------------------------------------------------------------------------------
# Synthetic pictures: random shapes on a gradient, distinct per seed.


def random_picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0.0, 1.0, width)[:, None]
    row = (start[None, :] * (1 - ramp) + end[None, :] * ramp).astype(np.uint8)
    image = Image.fromarray(np.broadcast_to(row[None], (height, width, 3)).copy())
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = [x0, y0, x0 + int(rng.integers(20, width // 2)), y0 + int(rng.integers(20, height // 2))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def near_duplicate(image: Image.Image, offset: tuple[float, float] = (0.3, 0.7)) -> Image.Image:
    """Half size, JPEG quality 60, then a 95 % x 95 % crop at ``offset`` (fractions of the slack)."""
    small = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=60)
    decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    crop_w, crop_h = round(decoded.width * 0.95), round(decoded.height * 0.95)
    left, top = round((decoded.width - crop_w) * offset[0]), round((decoded.height - crop_h) * offset[1])
    return decoded.crop((left, top, left + crop_w, top + crop_h))
