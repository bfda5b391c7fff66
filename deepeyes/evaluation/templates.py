"""The question text the model sees for a benchmark row.

:func:`deepeyes.prompts.questions.pose_question` writes it (the synthetic generator uses
the same function, so training and evaluation show one text); here a row's fields are
handed to it. ``pose_question`` and ``INSTRUCTIONS`` stay importable from here, where the
docs first named them.
"""

from __future__ import annotations

from deepeyes.evaluation.datasets import EvalSample
from deepeyes.prompts.questions import INSTRUCTIONS, pose_question

__all__ = ["INSTRUCTIONS", "build_question", "lists_options", "pose_question"]


def build_question(sample: EvalSample) -> str:
    """Hint, question, options (multiple choice) and the answer-form instruction."""
    choices = None if lists_options(sample) else sample.choices
    return pose_question(sample.question, choices=choices, answer_type=sample.answer_type, hint=sample.hint)


def lists_options(sample: EvalSample) -> bool:
    """MathVista-style questions already spell out their choices; do not repeat them."""
    options = (sample.choices or {}).values()
    return "Choices:" in sample.question and all(text in sample.question for text in options)
