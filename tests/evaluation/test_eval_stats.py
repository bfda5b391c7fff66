"""Intervals, paired tests, agreement and spread against values worked out by hand.

z = 1.959964 (the 97.5 % normal quantile), z² = 3.841459. Wilson's interval is
``(p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)``.
"""

from __future__ import annotations

import pytest

from deepeyes.evaluation.metrics import SampleOutcome, aggregate
from deepeyes.trajectory import TOOL_KINDS
from deepeyes.utils.stats import (
    bootstrap_mean_interval,
    cohen_kappa,
    format_interval,
    mcnemar_exact,
    mean_interval,
    paired_comparison,
    spread,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # p = 0.05: centre (0.05 + 0.0960365) / 1.1920729 = 0.1225063; half 1.959964 · sqrt(0.002375 + 0.0024009) / 1.1920729 = 0.1136249
        (1, 20, (0.0088814, 0.2361312)),
        # p = 0: [0, z² / (n + z²)] = [0, 3.841459 / 23.841459]
        (0, 20, (0.0, 0.1611252)),
        # p = 0.5: 0.5 ± 1.959964 · sqrt(0.0125 + 0.0024009) / 1.1920729
        (10, 20, (0.2992980, 0.7007020)),
        # p = 1: [n / (n + z²), 1] = [8 / 11.841459, 1]
        (8, 8, (0.6755922, 1.0)),
    ],
)
def test_wilson_interval_matches_the_formula_worked_by_hand(successes, n, expected):
    low, high = wilson_interval(successes, n)
    assert (low, high) == pytest.approx(expected, abs=1e-6)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="within"):
        wilson_interval(3, 2)


def test_bootstrap_interval_of_a_mean_is_the_exact_quantiles_of_the_resampled_mean():
    # [0, 0, 0, 1]: a resample's mean is K/4 with K ~ Binomial(4, 1/4): P(K=0) = 0.316 > 2.5 %,
    # P(K <= 2) = 0.949 < 97.5 % <= P(K <= 3) = 0.996, so the percentile interval is [0, 0.75].
    assert bootstrap_mean_interval([0, 0, 0, 1]) == (0.0, 0.75)
    assert bootstrap_mean_interval([0.4, 0.4, 0.4]) == (0.4, 0.4)  # one value: the resampled mean never moves
    assert bootstrap_mean_interval([]) is None
    assert bootstrap_mean_interval([0.2, 0.9, 0.5]) == bootstrap_mean_interval([0.2, 0.9, 0.5])  # seeded: reproducible


def test_mean_interval_is_wilson_for_proportions_and_bootstrap_for_scores():
    assert mean_interval([1, 0, 0, 0, 0]) == wilson_interval(1, 5)
    assert mean_interval([0.0, 0.0, 0.0, 0.5]) == (0.0, 0.375)  # K/4 · 0.5, same Binomial(4, 1/4) quantiles


@pytest.mark.parametrize(
    ("only_first", "only_second", "p"),
    [
        (0, 5, 2 / 2**5),  # 2 · P(X <= 0), X ~ Bin(5, ½)
        (1, 6, 2 * (1 + 7) / 2**7),  # 2 · (C(7,0) + C(7,1)) / 2⁷ = 0.125
        (10, 2, 2 * (1 + 12 + 66) / 2**12),  # 2 · (C(12,0) + C(12,1) + C(12,2)) / 2¹² = 0.0385742
        (3, 3, 1.0),  # as balanced as it gets: capped at 1
        (0, 0, 1.0),  # no discordant pair: no evidence either way
    ],
)
def test_exact_mcnemar_p_values(only_first, only_second, p):
    assert mcnemar_exact(only_first, only_second) == pytest.approx(p, rel=1e-12)


def test_paired_comparison_that_covers_zero_says_no_detectable_difference():
    # B − A per sample: [1, 1, 0, 0]; resampled mean K/4, K ~ Bin(4, ½): P(K=0) = P(K=4) = 1/16 > 2.5 %, so [0, 1].
    comparison = paired_comparison([0, 0, 1, 1], [1, 1, 1, 1])
    assert (comparison.n, comparison.difference, comparison.interval) == (4, 0.5, (0.0, 1.0))
    assert (comparison.a_only, comparison.b_only, comparison.p_value) == (0, 2, 0.5)
    assert not comparison.detectable and comparison.verdict() == "no detectable difference"


def test_paired_comparison_that_excludes_zero():
    # B right on 10 of 20 rows A gets wrong: resampled mean K/20, K ~ Bin(20, ½):
    # P(K <= 5) = 0.0207 < 2.5 % < P(K <= 6) = 0.0577 and P(K <= 13) = 0.942 < 97.5 % < P(K <= 14) = 0.979 → [0.30, 0.70].
    comparison = paired_comparison([0] * 20, [1] * 10 + [0] * 10)
    assert comparison.interval == pytest.approx((0.30, 0.70))
    assert comparison.p_value == pytest.approx(2 / 2**10)
    assert comparison.detectable and comparison.verdict() == "B better"
    assert comparison.to_dict()["difference_ci"] == pytest.approx([0.30, 0.70])
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison([0, 1], [1])
    assert paired_comparison([], []) is None


def test_cohen_kappa_by_hand():
    # p_o = 3/4; p_e = ½·¼ + ½·¾ = ½ → (0.75 − 0.5) / 0.5 = 0.5
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(0.5)
    assert cohen_kappa([True, False], [True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)
    assert cohen_kappa([True, True], [True, True]) is None  # p_e = 1: undefined
    assert cohen_kappa([], []) is None


def test_spread_over_repeats():
    block = spread([0.4, 0.5, 0.6])
    assert (block["k"], block["mean"], block["min"], block["max"]) == (3, pytest.approx(0.5), 0.4, 0.6)
    assert block["std"] == pytest.approx(0.1)  # sqrt((0.01 + 0 + 0.01) / 2)
    assert spread([0.7])["std"] == 0.0


def test_format_interval():
    assert format_interval((0.0088814, 0.2361312)) == "[0.9, 23.6]"
    assert format_interval((-0.05, 0.1), signed=True) == "[-5.0, +10.0]"
    assert format_interval(None) == "–"


def test_every_metric_block_carries_n_and_intervals():
    def sample(accuracy: float, score: float) -> SampleOutcome:
        return SampleOutcome("c", accuracy, score, True, 1.0, 1, {tool: 0 for tool in TOOL_KINDS}, 0, 0, 0, 1, False)

    block = aggregate([sample(1.0, 1.0)] + [sample(0.0, 0.0)] * 19)
    assert block["n"] == 20 and block["accuracy"] == 0.05
    assert block["accuracy_ci"] == pytest.approx([0.0088814, 0.2361312], abs=1e-6)
    # mean score 0.05 over twenty 0/1 scores: the bootstrap of K/20, K ~ Bin(20, 0.05): P(K=0) = 0.358, P(K<=3) = 0.984 → [0, 0.15]
    assert block["mean_score_ci"] == pytest.approx([0.0, 0.15])
    assert (block["circular_accuracy"], block["circular_n"]) == (None, 0)
