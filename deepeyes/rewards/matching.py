"""Which matcher a ground truth calls for: option letter, number, formula or free text.

Each matcher lives in its own module — :mod:`~deepeyes.rewards.choices`,
:mod:`~deepeyes.rewards.numbers`, :mod:`~deepeyes.rewards.maths`, and the exact-text rule in
:mod:`~deepeyes.rewards.normalize` — and each is strict on purpose (no substring matching,
hedges refused): an RL policy finds any leniency and learns to exploit it.
"""

from __future__ import annotations

from typing import Literal

from deepeyes.rewards.choices import choice_letter, option_by_text
from deepeyes.rewards.maths import looks_like_math
from deepeyes.rewards.numbers import parse_number

AnswerType = Literal["text", "number", "choice", "math"]
#: ``box``: a bounding box, graded by IoU (:mod:`deepeyes.rewards.grounding`), never by these matchers.
ANSWER_TYPES: tuple[str, ...] = ("auto", "text", "number", "choice", "math", "box")


def infer_answer_type(ground_truth: str, choices: dict[str, str] | None = None) -> AnswerType:
    """The matcher for a ground truth when the data does not say.

    With ``choices``, a ground truth given as an option's *text* is a choice too, so that
    the letter of that option (``\\boxed{\\text{B}}``) is as right as the text itself.
    """
    if choice_letter(ground_truth) or (choices and option_by_text(ground_truth, choices)):
        return "choice"
    if parse_number(ground_truth, sentence=False) is not None:
        return "number"
    if looks_like_math(ground_truth):
        return "math"
    return "text"
