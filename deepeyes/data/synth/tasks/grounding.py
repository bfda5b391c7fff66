"""Referring-expression grounding: answer "the blue square right of the red circle" with a box.

Opt-in (``--grounding_share`` / ``--eval_grounding`` of the generator), not part of the
default curriculum. The picture holds two shapes of the target's colour and kind, one on
each side of a unique anchor shape, plus distractors of other colours, so the relation in
the expression is what picks the target. The recorded code locates shapes by colour with
numpy (a colour mask, connected components with ``scipy.ndimage``, the fill ratio of each
component's box for its kind, as the counting task does) and prints the target's box; the
answer is that box, ``[x1, y1, x2, y2]`` with exclusive right/bottom edges.

The canvas is 224×224: a multiple of Qwen2.5-VL's 28-pixel grid within both the tiny
model's and Qwen's default pixel budgets, so the model's frame is the file's and a box the
code prints is the box the model must answer (``ImageFrame`` is the identity here).
"""

from __future__ import annotations

import random

import numpy as np
from scipy import ndimage

from deepeyes.data.synth.drawing import PALETTE, new_canvas, pastel
from deepeyes.data.synth.sample import SynthError, TaskSample, ToolStep, draw_on_side
from deepeyes.data.synth.tasks.context import TaskContext
from deepeyes.data.synth.tasks.counting import draw_shape
from deepeyes.wire.boxes import format_box

SIZE = 224
KINDS = ("circle", "square", "triangle")
#: relation → (the target's side of the anchor, the distractor twin's side)
RELATIONS = ("left of", "right of", "above", "below")
GAP = 6
#: Colour-mask tolerance and the fill ratios that tell the kinds apart (as in the counting task).
TOLERANCE = 40


def _question_values(rng: random.Random) -> tuple:
    colors = sorted(PALETTE)
    target_color, anchor_color = rng.sample(colors, 2)
    return target_color, rng.choice(KINDS), anchor_color, rng.choice(KINDS), rng.choice(RELATIONS)


def _overlaps(box: tuple[int, int, int, int], boxes: list[tuple[int, int, int, int]]) -> bool:
    return any(not (box[2] + GAP < b[0] or b[2] + GAP < box[0] or box[3] + GAP < b[1] or b[3] + GAP < box[1]) for b in boxes)


def _random_box(rng: random.Random, region: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """A square box of side 22-34 inside ``region`` (x0, y0, x1, y1), or None when it cannot fit."""
    side = rng.randint(22, 34)
    x0, y0, x1, y1 = region
    if x1 - x0 < side + 1 or y1 - y0 < side + 1:
        return None
    left, top = rng.randint(x0, x1 - side - 1), rng.randint(y0, y1 - side - 1)
    return (left, top, left + side, top + side)


def _side_region(relation: str, anchor: tuple[int, int, int, int], flip: bool) -> tuple[int, int, int, int]:
    """Where a shape must lie to be ``relation`` the anchor (the opposite side when ``flip``):
    wholly past the anchor's edge on that axis, anywhere on the other."""
    margin = 6
    side = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[relation] if flip else relation
    if side == "left of":
        return (margin, margin, anchor[0] - GAP, SIZE - margin)
    if side == "right of":
        return (anchor[2] + GAP, margin, SIZE - margin, SIZE - margin)
    if side == "above":
        return (margin, margin, SIZE - margin, anchor[1] - GAP)
    return (margin, anchor[3] + GAP, SIZE - margin, SIZE - margin)


def _layout(rng: random.Random, relation: str, distractors: int) -> list[tuple[int, int, int, int]] | None:
    """Anchor, target, twin, then distractor boxes; None when this draw does not fit."""
    anchor = _random_box(rng, (60, 60, SIZE - 60, SIZE - 60))
    assert anchor is not None
    boxes = [anchor]
    for flip in (False, True):
        box = _random_box(rng, _side_region(relation, anchor, flip))
        if box is None or _overlaps(box, boxes):
            return None
        boxes.append(box)
    for _ in range(200):
        if len(boxes) == 3 + distractors:
            break
        box = _random_box(rng, (6, 6, SIZE - 6, SIZE - 6))
        if box is not None and not _overlaps(box, boxes):
            boxes.append(box)
    return boxes


def locate(pixels: np.ndarray, rgb: tuple[int, int, int], kind: str) -> list[list[int]]:
    """Boxes ``[x1, y1, x2, y2]`` of the shapes of colour ``rgb`` and ``kind`` in an H×W×3 array
    (what the recorded code computes, in the same order: scipy's component order)."""
    mask = np.abs(pixels.astype(int) - list(rgb)).max(-1) < TOLERANCE
    labels, _ = ndimage.label(mask)
    found = []
    for i, region in enumerate(ndimage.find_objects(labels)):
        fill = (labels[region] == i + 1).mean()
        shape = "square" if fill > 0.9 else "circle" if fill > 0.68 else "triangle"
        if shape == kind:
            found.append([region[1].start, region[0].start, region[1].stop, region[0].stop])
    return found


def _code(target: tuple[str, str], anchor: tuple[str, str], relation: str) -> str:
    """Locate both kinds of shape by colour, then pick the target on the asked side of the anchor."""
    axis, sign = {"left of": (0, -1), "right of": (0, 1), "above": (1, -1), "below": (1, 1)}[relation]
    return "\n".join(
        [
            "import numpy as np",
            "from scipy import ndimage",
            "def boxes(rgb, kind):",
            f"    mask = np.abs(np.asarray(image_1, dtype=int) - rgb).max(-1) < {TOLERANCE}",
            "    labels, _ = ndimage.label(mask)",
            "    out = []",
            "    for i, s in enumerate(ndimage.find_objects(labels)):",
            "        f = (labels[s] == i + 1).mean()",
            '        k = "square" if f > 0.9 else "circle" if f > 0.68 else "triangle"',
            "        if k == kind:",
            "            out.append([s[1].start, s[0].start, s[1].stop, s[0].stop])",
            "    return out",
            f'anchor = boxes({list(PALETTE[anchor[0]])}, "{anchor[1]}")[0]',
            f'candidates = boxes({list(PALETTE[target[0]])}, "{target[1]}")',
            f"centre = lambda b: (b[{axis}] + b[{axis + 2}]) / 2",
            f"box = max(candidates, key=lambda b: {sign} * (centre(b) - centre(anchor)))",
            'print("box:", box)',
        ]
    )


def _draw(rng: random.Random, target: tuple[str, str], anchor: tuple[str, str], relation: str):
    """The picture and the target's box as the colour masks read it, or None when this draw
    does not fit or the masks do not read back one anchor and two candidates."""
    boxes = _layout(rng, relation, rng.randint(2, 4))
    if boxes is None:
        return None
    image, draw = new_canvas(SIZE, SIZE, pastel(rng))
    others = [c for c in sorted(PALETTE) if c not in (target[0], anchor[0])]
    draw_shape(draw, anchor[1], boxes[0], PALETTE[anchor[0]])
    draw_shape(draw, target[1], boxes[1], PALETTE[target[0]])
    draw_shape(draw, target[1], boxes[2], PALETTE[target[0]])  # the twin, on the other side
    for box in boxes[3:]:
        draw_shape(draw, rng.choice(KINDS), box, PALETTE[rng.choice(others)])
    pixels = np.asarray(image)
    anchors = locate(pixels, PALETTE[anchor[0]], anchor[1])
    candidates = locate(pixels, PALETTE[target[0]], target[1])
    if len(anchors) != 1 or len(candidates) != 2:
        return None
    inside = [c for c in candidates if boxes[1][0] <= c[0] and c[2] <= boxes[1][2] + 1 and boxes[1][1] <= c[1] and c[3] <= boxes[1][3] + 1]
    return (image, inside[0]) if len(inside) == 1 else None


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    # held-out questions ask for (target, anchor, relation) combinations no training question has
    target_color, target_kind, anchor_color, anchor_kind, relation = draw_on_side(rng, context.heldout, _question_values)
    for _ in range(100):
        drawn = _draw(rng, (target_color, target_kind), (anchor_color, anchor_kind), relation)
        if drawn is not None:
            image, truth = drawn
            break
    else:
        raise SynthError("grounding: no layout the colour masks read back after 100 draws")

    expression = f"the {target_color} {target_kind} {relation} the {anchor_color} {anchor_kind}"
    question = rng.choice([f"Where is {expression}?", f"Find {expression}.", f"Locate {expression} in the image."])
    step = ToolStep(
        tool="code_execution",
        thought=f"There are two {target_color} {target_kind}s; I will locate the shapes by colour with code and keep the one {relation} the {anchor_color} {anchor_kind}.",
        input=_code((target_color, target_kind), (anchor_color, anchor_kind), relation),
        expected_stdout=f"box: {truth}\n",
    )
    return TaskSample(
        task="grounding",
        question=question,
        answer=format_box(tuple(truth)),  # type: ignore[arg-type]
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"The code found {expression} at {truth}.",
        distractors=[],
    )
