"""Exact arithmetic on numbers written in the question, too long to do in one's head.

The numbers are in the question text (the image is only a plain card), so a tool-using
model needs nothing but to copy them into code: the tool is necessary (a small model
cannot multiply three-digit numbers token by token) and sufficient (the printed result is
the answer). Held-out questions use operand tuples from the other side of the partition.
"""

from __future__ import annotations

import random

from deepeyes.data.synth.drawing import new_canvas, pastel
from deepeyes.data.synth.sample import (
    TaskSample,
    ToolStep,
    draw_on_side,
    numeric_distractors,
)
from deepeyes.data.synth.tasks.context import TaskContext

SIZE = 224

#: name → (question template, code expression template, function)
OPERATIONS = {
    "product": ("What is {a} times {b}?", "{a} * {b}", lambda a, b: a * b),
    "sum_product": ("What is {a} plus {b} times {b}?", "{a} + {b} * {b}", lambda a, b: a + b * b),
    "difference_product": ("What is {a} times {b} minus {a}?", "{a} * {b} - {a}", lambda a, b: a * b - a),
}


def _operands(rng: random.Random) -> tuple:
    operation = rng.choice(sorted(OPERATIONS))
    return operation, rng.randint(12, 99), rng.randint(12, 99)


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    operation, a, b = draw_on_side(rng, context.heldout, _operands)
    question_template, expression_template, compute = OPERATIONS[operation]
    image, _ = new_canvas(SIZE, SIZE, pastel(rng))
    result = compute(a, b)
    expression = expression_template.format(a=a, b=b)
    step = ToolStep(
        tool="code_execution",
        thought="This needs exact arithmetic, so I will compute it with code.",
        input=f"print({expression})",
        expected_stdout=f"{result}\n",
    )
    return TaskSample(
        task="arithmetic",
        question=question_template.format(a=a, b=b),
        answer=str(result),
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"The code printed {result}.",
        distractors=numeric_distractors(result, (10, -10, 100, -100, 1)),
    )
