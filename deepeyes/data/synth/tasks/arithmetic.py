"""Arithmetic over numbers drawn in the image, too long to do reliably in one's head.

The model transcribes the numbers it reads (they are large and clear) and lets code do
the arithmetic; the printed result is the answer.
"""

from __future__ import annotations

import math
import random

from deepeyes.data.synth.drawing import INK, PALETTE, font, new_canvas, pastel, text_size
from deepeyes.data.synth.sample import TaskSample, ToolStep, numeric_distractors
from deepeyes.data.synth.tasks.context import TaskContext

WIDTH, HEIGHT = 400, 240
NUMBER_SIZE = 26

OPERATIONS = {
    "product": ("What is the product of all the numbers shown in the image?", "print(math.prod(numbers))", math.prod),
    "squares": (
        "What is the sum of the squares of the numbers shown in the image?",
        "print(sum(n * n for n in numbers))",
        lambda ns: sum(n * n for n in ns),
    ),
    "sum_times_largest": (
        "Add up all the numbers in the image and multiply the total by the largest number. What is the result?",
        "print(sum(numbers) * max(numbers))",
        lambda ns: sum(ns) * max(ns),
    ),
}


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    operation = rng.choice(sorted(OPERATIONS))
    question, computation, compute = OPERATIONS[operation]
    count = rng.randint(3, 5) if operation != "product" else rng.randint(3, 4)
    numbers = [rng.randint(12, 99) if operation == "product" else rng.randint(12, 299) for _ in range(count)]

    image, draw = new_canvas(WIDTH, HEIGHT, pastel(rng))
    slot = WIDTH // count
    for i, number in enumerate(numbers):
        text = str(number)
        width, height = text_size(text, NUMBER_SIZE)
        cx, cy = slot * i + slot // 2, HEIGHT // 2 + rng.randint(-50, 50)
        box = [cx - width // 2 - 10, cy - height // 2 - 10, cx + width // 2 + 10, cy + height // 2 + 10]
        draw.rectangle(box, fill=(255, 255, 255), outline=PALETTE[rng.choice(sorted(PALETTE))], width=3)
        left, top, _, _ = font(NUMBER_SIZE).getbbox(text)
        draw.text((cx - width // 2 - left, cy - height // 2 - top), text, fill=INK, font=font(NUMBER_SIZE))

    result = compute(numbers)
    listed = ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"
    code = "\n".join(["import math", "", f"numbers = {numbers}  # read from the image, left to right", computation])
    step = ToolStep(
        tool="code_execution",
        thought=(
            f"The image shows {count} numbers in boxes: {listed}. "
            "The arithmetic is long enough that I could easily slip, so I will compute it with code."
        ),
        input=code,
        expected_stdout=f"{result}\n",
    )
    return TaskSample(
        task="arithmetic",
        question=question,
        answer=str(result),
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"The code computed {result} from the numbers {listed}. The answer is {result}.",
        distractors=numeric_distractors(result, (10, -10, 100, -100, 1)),
    )
