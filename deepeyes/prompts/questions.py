"""The question text the model sees, by answer type: what evaluation and the synthetic data share.

The agent loop wraps this text in the user template and the system prompt; here only the
task-specific part is added — the options of a multiple-choice question and a one-line
instruction on the expected answer form — so that the reward's matcher finds the answer
in the form it expects (a letter, a number, a short phrase).

Evaluation poses benchmark rows with it (:mod:`deepeyes.evaluation.templates`) and the
synthetic generator its SFT and RL questions (:mod:`deepeyes.data.synth.pipeline`), so a
model is trained on exactly the text evaluation shows it (a tiny model does not transfer
to an instruction line it never saw). It sits with the prompts, below both.
"""

from __future__ import annotations

from collections.abc import Mapping

INSTRUCTIONS: dict[str, str] = {
    "choice": "Answer with the option's letter.",
    "number": "Answer with a number.",
    "text": "Answer with a single word or a short phrase.",
    "auto": "Answer with a single word, a number or a short phrase.",
    "box": "Answer with its box [x1, y1, x2, y2] in pixels of the image.",
}


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
