"""The question text the model sees for a benchmark row, by answer type.

The agent loop wraps this text in the user template and the system prompt; here only the
benchmark-specific part is added — the options of a multiple-choice row and a one-line
instruction on the expected answer form — so that the reward's matcher finds the answer
in the form it expects (a letter, a number, a short phrase).
"""

from __future__ import annotations

from deepeyes.evaluation.datasets import EvalSample

INSTRUCTIONS: dict[str, str] = {
    "choice": "Answer with the option's letter.",
    "number": "Answer with a number.",
    "text": "Answer with a single word or a short phrase.",
    "auto": "Answer with a single word, a number or a short phrase.",
}


def build_question(sample: EvalSample) -> str:
    """Hint, question, options (multiple choice) and the answer-form instruction."""
    parts = []
    if sample.hint:
        parts.append(f"Hint: {sample.hint}")
    parts.append(sample.question)
    if sample.choices and not _lists_options(sample):
        parts.append("Options:\n" + "\n".join(f"{letter}. {text}" for letter, text in sample.choices.items()))
    parts.append(INSTRUCTIONS.get(sample.answer_type, INSTRUCTIONS["auto"]))
    return "\n".join(parts)


def _lists_options(sample: EvalSample) -> bool:
    """MathVista-style questions already spell out their choices; do not repeat them."""
    options = (sample.choices or {}).values()
    return "Choices:" in sample.question and all(text in sample.question for text in options)
