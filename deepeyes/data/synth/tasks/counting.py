"""Count shapes of one colour (optionally of one kind) among many scattered shapes.

The recorded code really counts: a colour mask, connected components with
``scipy.ndimage.label`` and, for a shape kind, the fill ratio of each component's box
(square ≈ 1, circle ≈ π/4, triangle ≈ 1/2).
"""

from __future__ import annotations

import random

from PIL import ImageDraw

from deepeyes.data.synth.drawing import PALETTE, RGB, new_canvas, pastel
from deepeyes.data.synth.sample import (
    TaskSample,
    ToolStep,
    draw_on_side,
    numeric_distractors,
)
from deepeyes.data.synth.tasks.context import TaskContext

SIZE = 320
KINDS = ("circle", "square", "triangle")
GAP = 6


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int], color: RGB) -> None:
    x0, y0, x1, y1 = box
    if kind == "circle":
        draw.ellipse(box, fill=color)
    elif kind == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=color)


def _place(rng: random.Random, count: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping boxes (with a gap), so every shape is its own component."""
    boxes: list[tuple[int, int, int, int]] = []
    while len(boxes) < count:
        side = rng.randint(22, 36)
        x0, y0 = rng.randint(8, SIZE - side - 8), rng.randint(8, SIZE - side - 8)
        box = (x0, y0, x0 + side, y0 + side)
        if all(box[2] + GAP < b[0] or b[2] + GAP < box[0] or box[3] + GAP < b[1] or b[3] + GAP < box[1] for b in boxes):
            boxes.append(box)
    return boxes


def _code(color_name: str, kind: str | None) -> str:
    """Short enough for a small model to write in one turn (about 80 tokens, 170 with a shape
    kind, within the 208 new tokens a turn gets). The colour is named, not spelled as an RGB
    triple (``ImageColor.getrgb``, which is what the palette draws with), so the only values
    that change are words copied from the question."""
    lines = [
        "import numpy as np",
        "from PIL import ImageColor",
        "from scipy import ndimage",
        f'mask = np.abs(np.asarray(image_1, dtype=int) - ImageColor.getrgb("{color_name}")).max(-1) < 40',
        "labels, found = ndimage.label(mask)",
    ]
    if kind is None:
        lines.append(f'print("{color_name} shapes:", found)')
        return "\n".join(lines)
    lines += [
        "# bounding-box fill: square ~1, circle ~pi/4, triangle ~1/2",
        "fills = [(labels[box] == i + 1).mean() for i, box in enumerate(ndimage.find_objects(labels))]",
        'kinds = ["square" if f > 0.9 else "circle" if f > 0.68 else "triangle" for f in fills]',
        f'print("{color_name} {kind}s:", kinds.count("{kind}"))',
    ]
    return "\n".join(lines)


def _question_values(rng: random.Random) -> tuple:
    color_name = rng.choice(sorted(PALETTE))
    kind = rng.choice(KINDS) if rng.random() < 0.5 else None
    return color_name, kind, rng.randint(2, 8)


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    # held-out questions ask for (colour, kind, count) combinations no training question has
    color_name, kind, target = draw_on_side(rng, context.heldout, _question_values)
    by_kind = kind is not None
    others = rng.randint(6, 12)
    boxes = _place(rng, target + others)
    image, draw = new_canvas(SIZE, SIZE, pastel(rng))
    other_colors = [c for c in sorted(PALETTE) if c != color_name]
    for i, box in enumerate(boxes):
        if i < target:
            shape_kind, color = (kind or rng.choice(KINDS)), color_name
        elif by_kind and rng.random() < 0.4:
            # same colour, other kind: the shape test must matter, not just the colour
            shape_kind, color = rng.choice([k for k in KINDS if k != kind]), color_name
        else:
            shape_kind, color = rng.choice(KINDS), rng.choice(other_colors)
        draw_shape(draw, shape_kind, box, PALETTE[color])

    things = f"{color_name} {kind}s" if kind else f"{color_name} shapes"
    question = rng.choice(
        [f"How many {things} are there in the image?", f"Count the {things} in this picture.", f"How many {things} can you see?"]
    )
    answer = str(target)
    step = ToolStep(
        tool="code_execution",
        thought=f"Counting {things} by eye is error-prone, so I will count them with code.",
        input=_code(color_name, kind),
        expected_stdout=f"{things}: {target}\n",
    )
    return TaskSample(
        task="counting",
        question=question,
        answer=answer,
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"The code counted {target} {things}.",
        distractors=numeric_distractors(target, (1, -1, 2, 3)),
    )
