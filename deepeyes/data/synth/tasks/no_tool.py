"""Questions whose answer is written in the question itself: no tool can help.

They teach the model that a tool is a cost, not a ritual: the trajectory is one thought
and the answer. The answer word is quoted in the question, so reading the question is
necessary and sufficient; held-out questions use words from the other side of the
partition.
"""

from __future__ import annotations

import random

from deepeyes.data.synth.drawing import new_canvas, pastel
from deepeyes.data.synth.sample import TaskSample, draw_on_side
from deepeyes.data.synth.tasks.context import TaskContext

SIZE = 224
WORDS = (
    "apple", "river", "candle", "garden", "silver", "window", "pepper", "rocket", "meadow", "violin",
    "marble", "harbor", "lantern", "pillow", "falcon", "copper", "tunnel", "basket", "mirror", "orchid",
    "anchor", "bridge", "cactus", "dragon", "engine", "forest", "glacier", "hammer", "island", "jacket",
    "kettle", "ladder", "magnet", "needle", "oyster", "parrot", "quartz", "rabbit", "saddle", "tomato",
)
TEMPLATES = (
    ("Reply with the word in quotes: '{word}'.", "The question quotes the word '{word}'; no tool is needed."),
    ("Which word is written between the quotes: '{word}'?", "The quoted word is '{word}'; I can answer directly."),
    ("The password is '{word}'. What is the password?", "The question itself says the password is '{word}'."),
)


def _word(rng: random.Random) -> tuple:
    return (rng.choice(WORDS),)


def build(rng: random.Random, context: TaskContext) -> TaskSample:
    (word,) = draw_on_side(rng, context.heldout, _word)
    question, thought = rng.choice(TEMPLATES)
    image, _ = new_canvas(SIZE, SIZE, pastel(rng))
    distractors = [w for w in WORDS if w != word]
    rng.shuffle(distractors)
    return TaskSample(
        task="no_tool",
        question=question.format(word=word),
        answer=word,
        image=image,
        steps=[],
        final_thought=lambda _obs: thought.format(word=word),
        distractors=distractors[:3],
    )
