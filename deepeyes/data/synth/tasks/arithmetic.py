"""Exact arithmetic on numbers written in the question, too long to do in one's head.

The numbers are in the question text (the image is only a plain card), so a tool-using
model needs nothing but to copy them into code: the tool is necessary (a small model
cannot multiply two-digit numbers token by token) and sufficient (the printed result is
the answer). Held-out questions use operand tuples from the other side of the partition.

The recorded code copies the question's words whole and lets Python turn ``plus``,
``minus`` and ``times`` into operators, rather than writing ``38 + 45 * 45`` itself: a
small model copies a span far more reliably than it maps each word to a symbol (the SFT
models that wrote operators picked the wrong one for most held-out questions), and the
replacement line is the same text in every trajectory.
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

#: name → (the question's expression in words, function); the question asks "What is <words>?"
OPERATIONS = {
    "product": ("{a} times {b}", lambda a, b: a * b),
    "sum_product": ("{a} plus {b} times {b}", lambda a, b: a + b * b),
    "difference_product": ("{a} times {b} minus {a}", lambda a, b: a * b - a),
}

#: the code line that turns the copied words into a Python expression (same in every trajectory)
TO_OPERATORS = 'expression = words.replace("plus", "+").replace("minus", "-").replace("times", "*")'


def code(words: str) -> str:
    """The recorded code: the question's words copied verbatim, then evaluated."""
    return "\n".join([f'words = "{words}"', TO_OPERATORS, "print(eval(expression))"])


def _operands(rng: random.Random) -> tuple:
    operation = rng.choice(sorted(OPERATIONS))
    return operation, rng.randint(12, 99), rng.randint(12, 99)


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    operation, a, b = draw_on_side(rng, context.heldout, _operands)
    words_template, compute = OPERATIONS[operation]
    image, _ = new_canvas(SIZE, SIZE, pastel(rng))
    result = compute(a, b)
    words = words_template.format(a=a, b=b)
    step = ToolStep(
        tool="code_execution",
        thought="This needs exact arithmetic, so I will compute the question's expression with code.",
        input=code(words),
        expected_stdout=f"{result}\n",
    )
    return TaskSample(
        task="arithmetic",
        question=f"What is {words}?",
        answer=str(result),
        image=image,
        steps=[step],
        final_thought=lambda _obs: f"The code printed {result}.",
        distractors=numeric_distractors(result, (10, -10, 100, -100, 1)),
    )
