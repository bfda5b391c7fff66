"""Uncertainty for evaluation figures: intervals, paired tests, agreement, spread over repeats.

A benchmark accuracy measured on 20 rows is known to about ±20 points; a difference of
two checkpoints on the same rows is known better, because the rows both get right or both
get wrong cancel. These functions put numbers on both, for the evaluation (``eval_results.json``,
``deepeyes.evaluation.compare``, the judge audit) and for the quick start's learning report,
which is why they sit at the bottom of the package and not inside ``deepeyes.evaluation``
(the ``rl`` layer may not import it).

Every interval is a ``(low, high)`` pair of floats on the scale of the data (a proportion
in ``[0, 1]`` for accuracies). Sources: the Wilson score interval (Wilson 1927; Brown, Cai &
DasGupta 2001 recommend it over the normal interval for small ``n``); the percentile
bootstrap (Efron & Tibshirani 1993, ch. 13); the exact McNemar test (McNemar 1947; the
exact form is the two-sided binomial test on the discordant pairs, Fagerland et al. 2013);
Cohen's kappa (Cohen 1960). scipy supplies the binomial machinery and the bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The confidence level every figure in the project reports.
CONFIDENCE = 0.95
#: Bootstrap resamples: at 9 999 the Monte-Carlo error of a 2.5 % quantile is about ±0.3 % in
#: probability, far below the interval widths that matter here.
RESAMPLES = 9_999
#: Fixed so that two runs of the same evaluation print the same interval.
BOOTSTRAP_SEED = 0

Interval = tuple[float, float]


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> Interval | None:
    """The Wilson score interval of a proportion ``successes / n``; ``None`` when ``n`` is 0.

    Raises ``ValueError`` when ``successes`` is outside ``[0, n]``. Computed by
    ``scipy.stats.binomtest(...).proportion_ci(method="wilson")`` (no continuity correction).
    """
    if n == 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within [0, n]: got {successes} of {n}")
    from scipy.stats import (
        binomtest,  # scipy.stats takes ~1 s to import: only when a figure needs it
    )

    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0.0) | (values == 1.0)))


def bootstrap_mean_interval(
    values: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> Interval | None:
    """Percentile-bootstrap interval of the mean of ``values`` (resampling the samples).

    ``None`` for no values; ``(v, v)`` when every value is ``v`` (the bootstrap distribution is
    a point; scipy would warn and return NaN). Deterministic for a given ``seed``.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    from scipy.stats import bootstrap

    result = bootstrap(
        (data,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
        batch=max(1, 2_000_000 // data.size),  # bounded memory on benchmarks of 20 000 rows
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval | None:
    """The interval of a mean: Wilson when every value is 0 or 1 (a proportion), else the bootstrap."""
    data = np.asarray(values, dtype=float)
    if data.size and _is_binary(data):
        return wilson_interval(int(data.sum()), int(data.size), confidence)
    return bootstrap_mean_interval(data, confidence)


def mcnemar_exact(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    ``only_first``: samples the first run got right and the second wrong; ``only_second``: the
    reverse. Under "no difference" each discordant pair goes either way with probability ½,
    so the p-value is the two-sided binomial test of ``only_first`` of ``only_first +
    only_second`` at ½ (``2 · P(X ≤ min)``, capped at 1); 1.0 when there is no discordant pair.
    """
    if only_first < 0 or only_second < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_first} and {only_second}")
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(only_first, only_second), discordant, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """Run B against run A on the same samples (B − A).

    ``difference`` and ``interval`` are on the proportion scale (0.1 = ten points);
    ``a_only`` / ``b_only`` count the samples only that run got right (the McNemar discordant pairs).
    """

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    interval: Interval
    a_only: int
    b_only: int
    p_value: float

    @property
    def detectable(self) -> bool:
        """Whether the interval excludes 0."""
        low, high = self.interval
        return low > 0.0 or high < 0.0

    def verdict(self) -> str:
        if not self.detectable:
            return "no detectable difference"
        return "B better" if self.difference > 0 else "B worse"

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "difference": self.difference,
            "difference_ci": list(self.interval),
            "a_only_correct": self.a_only,
            "b_only_correct": self.b_only,
            "mcnemar_p": self.p_value,
            "detectable": self.detectable,
        }


def paired_comparison(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> PairedComparison | None:
    """Compare per-sample scores ``b`` with ``a`` (same samples, same order); ``None`` when empty.

    The interval is the percentile bootstrap of the mean of ``b − a`` (resampling samples,
    so each resample keeps the pairs together). The McNemar count treats a score as right
    when it is at least 0.5 (the scores are 0/1 accuracies in practice). Raises
    ``ValueError`` when the lengths differ.
    """
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape:
        raise ValueError(f"paired samples must have equal length, got {first.size} and {second.size}")
    if first.size == 0:
        return None
    right_a, right_b = first >= 0.5, second >= 0.5
    interval = bootstrap_mean_interval(second - first, confidence)
    assert interval is not None
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(right_b & ~right_a))
    return PairedComparison(
        n=int(first.size),
        accuracy_a=float(first.mean()),
        accuracy_b=float(second.mean()),
        difference=float(second.mean() - first.mean()),
        interval=interval,
        a_only=a_only,
        b_only=b_only,
        p_value=mcnemar_exact(a_only, b_only),
    )


def cohen_kappa(first: Sequence[bool], second: Sequence[bool]) -> float | None:
    """Cohen's kappa of two raters' binary verdicts: ``(p_o − p_e) / (1 − p_e)``.

    ``p_o`` is the observed agreement, ``p_e`` the agreement expected from each rater's
    marginal rates. ``None`` for no items, or when ``p_e`` is 1 (both raters gave one and the
    same verdict throughout, so kappa is undefined). Written out here: it is two lines, and
    scikit-learn (which has ``cohen_kappa_score``) is not in the project's stack.
    """
    x, y = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"both raters must rate the same items, got {x.size} and {y.size}")
    if x.size == 0:
        return None
    observed = float(np.mean(x == y))
    expected = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    if expected == 1.0:
        return None
    return (observed - expected) / (1 - expected)


def spread(values: Sequence[float]) -> dict[str, float | int | list[float]]:
    """Mean, sample standard deviation (``ddof=1``; 0 for one value), min, max over repeated runs."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("spread of no values")
    return {
        "k": int(data.size),
        "mean": float(data.mean()),
        "std": float(data.std(ddof=1)) if data.size > 1 else 0.0,
        "min": float(data.min()),
        "max": float(data.max()),
        "values": [float(v) for v in data],
    }


def format_interval(interval: Sequence[float] | None, percent: bool = True, signed: bool = False) -> str:
    """``[1.4, 16.5]`` (percent points) for printed tables; ``–`` when there is none."""
    if interval is None:
        return "–"
    scale = 100.0 if percent else 1.0
    spec = "+.1f" if signed else ".1f"
    low, high = interval
    return f"[{scale * low:{spec}}, {scale * high:{spec}}]"
