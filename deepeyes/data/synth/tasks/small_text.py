"""Read a code printed a few pixels high on a small label in a larger, cluttered image.

At the image's own resolution the text is a smudge, so the trajectory crops around the
label and enlarges it fourfold; the enlarged crop is shown back (``display``) and the
answer is read from it.
"""

from __future__ import annotations

import random

from deepeyes.data.synth.drawing import (
    INK,
    PALETTE,
    font,
    new_canvas,
    pastel,
    text_size,
)
from deepeyes.data.synth.sample import TaskSample, ToolStep
from deepeyes.data.synth.tasks.context import TaskContext

SIZE = 448
TEXT_SIZE = 8  # glyphs about 6-7 px high
ZOOM = 4
LETTERS = "ACDEFHJKLMNPRTUVWXY"  # no look-alikes such as O/0 or I/1
DIGITS = "2345679"
LABELS = {"label": (255, 255, 255), "tag": (255, 245, 200), "sticker": (225, 240, 255)}


def _code(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(3)) + "-" + "".join(rng.choice(DIGITS) for _ in range(3))


def _region(x: int, y: int) -> str:
    vertical = "top" if y < SIZE / 3 else "bottom" if y > 2 * SIZE / 3 else "middle"
    horizontal = "left" if x < SIZE / 3 else "right" if x > 2 * SIZE / 3 else "centre"
    return "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    text = _code(rng)
    noun = rng.choice(sorted(LABELS))
    image, draw = new_canvas(SIZE, SIZE, pastel(rng))
    width, height = text_size(text, TEXT_SIZE)
    label_w, label_h = width + 6, height + 6
    lx, ly = rng.randint(10, SIZE - label_w - 10), rng.randint(10, SIZE - label_h - 10)
    label_box = (lx, ly, lx + label_w, ly + label_h)

    keep_out = (lx - 20, ly - 20, lx + label_w + 20, ly + label_h + 20)
    for _ in range(rng.randint(8, 14)):
        side = rng.randint(30, 80)
        x0, y0 = rng.randint(0, SIZE - side), rng.randint(0, SIZE - side)
        if x0 < keep_out[2] and keep_out[0] < x0 + side and y0 < keep_out[3] and keep_out[1] < y0 + side:
            continue
        color = PALETTE[rng.choice(sorted(PALETTE))]
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + side, y0 + side], fill=color)
        else:
            draw.rectangle([x0, y0, x0 + side, y0 + side], fill=color)
    draw.rectangle(label_box, fill=LABELS[noun], outline=INK)
    left, top, _, _ = font(TEXT_SIZE).getbbox(text)
    draw.text((lx + 3 - left, ly + 3 - top), text, fill=INK, font=font(TEXT_SIZE))

    pad = rng.randint(8, 14)
    crop = (max(0, lx - pad), max(0, ly - pad), min(SIZE, lx + label_w + pad), min(SIZE, ly + label_h + pad))
    zoomed = ((crop[2] - crop[0]) * ZOOM, (crop[3] - crop[1]) * ZOOM)
    code = "\n".join(
        [
            "from PIL import Image",
            "",
            f"crop = image_1.crop({crop})  # around the small {noun}",
            f"zoom = crop.resize((crop.width * {ZOOM}, crop.height * {ZOOM}), Image.LANCZOS)",
            "display(zoom)",
            'print("zoomed crop:", zoom.size)',
        ]
    )
    center = ((label_box[0] + label_box[2]) // 2, (label_box[1] + label_box[3]) // 2)
    question = rng.choice(
        [
            f"What code is printed on the small {noun} in the image?",
            f"Read the code written on the tiny {noun}.",
            f"There is a small {noun} somewhere in this picture. What does it say?",
        ]
    )
    step = ToolStep(
        tool="code_execution",
        thought=(
            f"There is a small {noun} in the {_region(*center)} of the image, around ({center[0]}, {center[1]}), "
            "but its text is only a few pixels high and I cannot read it reliably. "
            f"I will crop the area around it and enlarge it {ZOOM} times."
        ),
        input=code,
        expected_stdout=f"zoomed crop: {zoomed}\n",
    )
    distractors: list[str] = []
    while len(distractors) < 3:  # one character changed: what a blurry read gets wrong
        i = rng.choice([0, 1, 2, 4, 5, 6])
        wrong = text[:i] + rng.choice(LETTERS if text[i].isalpha() else DIGITS) + text[i + 1 :]
        if wrong != text and wrong not in distractors:
            distractors.append(wrong)
    return TaskSample(
        task="small_text",
        question=question,
        answer=text,
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"In the enlarged crop the {noun} clearly reads {text}.",
        distractors=distractors,
    )
