"""CircularEval: ask a multiple-choice row once per rotation of its options.

A model that prefers a position (always "A") scores the share of rows whose gold answer
sits there; MMBench (Liu et al. 2023, "MMBench: Is Your Multi-modal Model an All-around
Player?", §3.2) answered it with CircularEval: a row with ``k`` options is asked ``k``
times, its option texts shifted one place each time, and counts as correct only when
every rotation is answered correctly. The letters stay ``A``…; the texts move, and the
gold letter moves with its text:

    rotation r: option letter j shows the text of original option (j + r) mod k,
    so the gold text, originally at position g, is now at letter (g − r) mod k.

Rotation 0 is the row as published, i.e. the plain evaluation's own trajectory; rotations
1…k−1 are extra samples (``EvalSample.rotation``, id ``<dataset>/<index>@rot<r>``) stored in
``OUTPUT_REPORT/circular/<dataset>.jsonl``, beside (not inside) ``trajectories/`` so that
behaviour analysis sees the benchmark as published. Rows that cannot be rotated are left
out of the circular figure and counted: rows without options, rows whose answer is none of
their options, and rows whose question text spells the options out itself (MathVista), where
rotating the option columns would not rotate what the model reads.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deepeyes.evaluation.datasets import EvalSample, gold_option
from deepeyes.evaluation.templates import lists_options
from deepeyes.utils.stats import wilson_interval

CIRCULAR_DIR = "circular"


def rotatable(sample: EvalSample) -> bool:
    """Whether the row is multiple choice with a gold option and options the template lists."""
    return sample.rotation == 0 and gold_option(sample) is not None and not lists_options(sample)


def rotate(sample: EvalSample, shift: int) -> EvalSample:
    """The row with its option texts shifted ``shift`` places and its answer re-lettered.

    Raises ``ValueError`` for a row :func:`rotatable` rejects or a shift outside ``1…k−1``.
    """
    if not rotatable(sample):
        raise ValueError(f"{sample.id}: not a rotatable multiple-choice row")
    assert sample.choices is not None
    letters = list(sample.choices)
    texts = list(sample.choices.values())
    k = len(letters)
    if not 0 < shift < k:
        raise ValueError(f"{sample.id}: rotation must be within 1…{k - 1}, got {shift}")
    gold = letters.index(gold_option(sample))  # type: ignore[arg-type]
    choices = {letter: texts[(j + shift) % k] for j, letter in enumerate(letters)}
    return dataclasses.replace(sample, choices=choices, answer=letters[(gold - shift) % k], rotation=shift)


def rotations(samples: list[EvalSample]) -> list[EvalSample]:
    """Rotations 1…k−1 of every rotatable row, in row order."""
    return [rotate(sample, shift) for sample in samples if rotatable(sample) for shift in range(1, len(sample.choices or {}))]


def circular_outcomes(samples: list[EvalSample], plain: dict[str, dict[str, Any]], rotated: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Sample id → correct under every rotation, for each rotatable row.

    ``plain``: the plain run's records by sample id (rotation 0); ``rotated``: the circular
    pass's records by id. A missing record (a failed rollout) counts as wrong.
    """
    outcomes = {}
    for sample in samples:
        if not rotatable(sample):
            continue
        ids = [sample.id, *(rotate(sample, shift).id for shift in range(1, len(sample.choices or {})))]
        records = [plain.get(ids[0]), *(rotated.get(i) for i in ids[1:])]
        outcomes[sample.id] = all(r is not None and (r.get("reward") or {}).get("accuracy", 0.0) >= 1.0 for r in records)
    return outcomes


def circular_block(flags: list[bool] | None) -> dict[str, Any]:
    """``circular_accuracy`` (``None`` when not run or no row qualifies), its Wilson interval and ``circular_n``."""
    if not flags:
        return {"circular_accuracy": None, "circular_accuracy_ci": None, "circular_n": 0}
    correct = sum(flags)
    return {
        "circular_accuracy": correct / len(flags),
        "circular_accuracy_ci": list(wilson_interval(correct, len(flags))),  # type: ignore[arg-type]
        "circular_n": len(flags),
    }
