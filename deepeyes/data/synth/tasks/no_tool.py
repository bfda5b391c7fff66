"""Questions answerable at a glance: a few large shapes, asked about colour, kind or count.

They teach the model that a tool is a cost, not a ritual: the trajectory is one thought
and the answer.
"""

from __future__ import annotations

import random

from deepeyes.data.synth.drawing import PALETTE, new_canvas, pastel
from deepeyes.data.synth.sample import TaskSample
from deepeyes.data.synth.tasks.context import TaskContext
from deepeyes.data.synth.tasks.counting import KINDS, draw_shape

SIZE = 256


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    count = rng.randint(1, 3)
    kinds = rng.sample(KINDS, count)
    colors = rng.sample(sorted(PALETTE), count)
    image, draw = new_canvas(SIZE, SIZE, pastel(rng))
    slot = SIZE // count
    for i, (kind, color) in enumerate(zip(kinds, colors)):
        side = rng.randint(50, min(90, slot - 20))
        x0 = slot * i + (slot - side) // 2
        y0 = rng.randint(20, SIZE - side - 20)
        draw_shape(draw, kind, (x0, y0, x0 + side, y0 + side), PALETTE[color])

    pick = rng.randrange(count)
    variant = rng.choice(["color", "kind", "count"])
    if variant == "color":
        question, answer = f"What colour is the {kinds[pick]}?", colors[pick]
        thought = f"There is one {kinds[pick]} in the image and it is clearly {colors[pick]}."
        distractors = [c for c in sorted(PALETTE) if c != answer]
    elif variant == "kind":
        question, answer = f"What shape is the {colors[pick]} object?", kinds[pick]
        thought = f"The {colors[pick]} object is a large {kinds[pick]}; no tool is needed."
        distractors = [k for k in KINDS if k != answer] + ["star"]
    else:
        question, answer = "How many shapes are in the image?", str(count)
        thought = f"There are only {count} large, well separated shape{'s' if count > 1 else ''}; I can count them at a glance."
        distractors = [str(v) for v in range(1, 6) if v != count]
    rng.shuffle(distractors)
    return TaskSample(
        task="no_tool",
        question=question,
        answer=answer,
        image=image,
        steps=[],
        final_thought=lambda _obs: thought,
        distractors=distractors[:3],
    )
