"""The question text the model sees for a benchmark row, by answer type.

The agent loop wraps this text in the user template and the system prompt; here only the
benchmark-specific part is added — the options of a multiple-choice row and a one-line
instruction on the expected answer form — so that the reward's matcher finds the answer
in the form it expects (a letter, a number, a short phrase).

:func:`pose_question` is also how the synthetic generator writes its SFT and RL questions,
so a model is trained on exactly the text evaluation shows it (a tiny model does not
transfer to an instruction line it never saw).
"""

from __future__ import annotations

from collections.abc import Mapping

from deepeyes.evaluation.datasets import EvalSample

INSTRUCTIONS: dict[str, str] = {
    "choice": "Answer with the option's letter.",
    "number": "Answer with a number.",
    "text": "Answer with a single word or a short phrase.",
    "auto": "Answer with a single word, a number or a short phrase.",
}


def build_question(sample: EvalSample) -> str:
    """Hint, question, options (multiple choice) and the answer-form instruction."""
    choices = None if _lists_options(sample) else sample.choices
    return pose_question(sample.question, choices=choices, answer_type=sample.answer_type, hint=sample.hint)


def pose_question(
    question: str,
    choices: Mapping[str, str] | None = None,
    answer_type: str = "auto",
    hint: str | None = None,
) -> str:
    """``Hint: …`` (if any), the question, ``Options:`` with one ``A. text`` line per choice (if
    any) and the instruction for ``answer_type`` (a key of :data:`INSTRUCTIONS`; unknown = auto),
    joined by newlines."""
    parts = []
    if hint:
        parts.append(f"Hint: {hint}")
    parts.append(question)
    if choices:
        parts.append("Options:\n" + "\n".join(f"{letter}. {text}" for letter, text in choices.items()))
    parts.append(INSTRUCTIONS.get(answer_type, INSTRUCTIONS["auto"]))
    return "\n".join(parts)


def _lists_options(sample: EvalSample) -> bool:
    """MathVista-style questions already spell out their choices; do not repeat them."""
    options = (sample.choices or {}).values()
    return "Choices:" in sample.question and all(text in sample.question for text in options)
