"""Baselines printed beside every run, so a reader sees how much of an accuracy is signal.

Trivial baselines, computed from the rows without running anything:

* ``always_first_option`` — answer the first option letter on every multiple-choice row
  (the position bias VLMEvalKit's empty-prediction fallback introduced, its issue #1701);
* ``most_frequent_answer`` — give, on every row, the gold answer most frequent in the set
  (the gold letter for multiple-choice rows, the normalised text for the others): the
  majority-class baseline, an upper bound for any answer that ignores the question;
* ``uniform_random`` — the expected accuracy of a uniformly random option (mean ``1/k``
  over the multiple-choice rows); an expectation, so it carries no interval.

Model baselines (``EvalConfig.baseline_runs``), each one more pass of the model:

* ``no_image`` — the question alone: what the model knows without looking;
* ``no_tools`` — one turn, no tools (skipped when the run itself has no tools).

Each baseline is compared with the model's accuracy on the same rows (``model_accuracy``);
a trivial baseline that reaches it flags the benchmark (``flags``), unless the baseline
itself scores 0 (it then shows nothing the model's own 0 does not). A model baseline is
also compared sample by sample (paired bootstrap, exact McNemar).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from deepeyes.evaluation.datasets import EvalSample, gold_option
from deepeyes.utils.stats import paired_comparison, wilson_interval

TRIVIAL = ("always_first_option", "most_frequent_answer", "uniform_random")
MODEL_BASELINES = ("no_image", "no_tools")


def _answer_key(sample: EvalSample) -> str:
    letter = gold_option(sample)
    if letter is not None:
        return f"option {letter}"
    return " ".join(sample.answer.lower().split())


def _model_accuracy(samples: list[EvalSample], accuracy: dict[str, float]) -> float | None:
    scored = [accuracy.get(s.id, 0.0) for s in samples]
    return sum(scored) / len(scored) if scored else None


def _entry(correct: int, n: int, model: float | None, **extra: Any) -> dict[str, Any]:
    ci = wilson_interval(correct, n)
    return {"accuracy": correct / n if n else None, "accuracy_ci": list(ci) if ci else None, "n": n, "model_accuracy": model, **extra}


def trivial_baselines(samples: list[EvalSample], accuracy: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The three trivial baselines of one dataset; ``accuracy`` is the model's, by sample id."""
    choice = [s for s in samples if s.choices]
    first = sum(1 for s in choice if gold_option(s) == next(iter(s.choices or {"": ""})))
    counts = Counter(_answer_key(s) for s in samples)
    answer, top = counts.most_common(1)[0] if counts else ("", 0)
    chance = sum(1 / len(s.choices or {}) for s in choice) / len(choice) if choice else None
    return {
        "always_first_option": _entry(first, len(choice), _model_accuracy(choice, accuracy), rows="multiple choice"),
        "most_frequent_answer": _entry(top, len(samples), _model_accuracy(samples, accuracy), rows="all", answer=answer),
        "uniform_random": {
            "accuracy": chance,
            "accuracy_ci": None,
            "n": len(choice),
            "model_accuracy": _model_accuracy(choice, accuracy),
            "rows": "multiple choice",
        },
    }


def model_baseline(samples: list[EvalSample], accuracy: dict[str, float], baseline: dict[str, float]) -> dict[str, Any]:
    """A model baseline's block: its accuracy with interval, and the model compared with it, sample by sample."""
    values = [baseline.get(s.id, 0.0) for s in samples]
    correct = sum(1 for v in values if v >= 0.5)
    block = _entry(correct, len(samples), _model_accuracy(samples, accuracy), rows="all")
    block["accuracy"] = sum(values) / len(values) if values else None
    comparison = paired_comparison(values, [accuracy.get(s.id, 0.0) for s in samples])
    block["model_vs_baseline"] = comparison.to_dict() if comparison else None
    return block


def flags(dataset: str, baselines: dict[str, dict[str, Any]]) -> list[str]:
    """One sentence per trivial baseline whose accuracy reaches the model's on the same rows."""
    found = []
    for name in TRIVIAL:
        block = baselines.get(name)
        if not block or block.get("accuracy") is None or block.get("model_accuracy") is None or not block.get("n"):
            continue
        if block["accuracy"] > 0 and block["accuracy"] >= block["model_accuracy"]:
            rows = f"{block['n']} {'multiple-choice ' if block['rows'] != 'all' else ''}row{'s' if block['n'] != 1 else ''}"
            found.append(
                f"{dataset}: {name.replace('_', '-')} reaches {100 * block['accuracy']:.1f} % on {rows}, "
                f"the model {100 * block['model_accuracy']:.1f} %"
            )
    return found
