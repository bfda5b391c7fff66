"""The answer-matching conformance corpus: no false positive, at most 2 % false negatives.

The same corpus ``benchmarks/reward_conformance.py`` prints by kind (beside math-verify
alone); here the reward is held to the targets of issue 25.
"""

from __future__ import annotations

import collections

from deepeyes.rewards import RewardConfig, RewardScorer
from deepeyes.rewards.conformance import KINDS, corpus, reward_verdict


def test_corpus_covers_every_kind_with_enough_cases() -> None:
    cases = corpus()
    per_kind = collections.Counter(case.kind for case in cases)
    assert len(cases) >= 500
    assert set(per_kind) == {make.__name__ for make in KINDS} and len(per_kind) >= 12
    for kind, count in per_kind.items():
        assert count >= 15, kind
    assert corpus() == cases  # reproducible for a seed


def test_reward_has_no_false_positive_and_few_false_negatives() -> None:
    scorer = RewardScorer(RewardConfig())
    cases = corpus()
    misses = [(case, verdict) for case in cases if (verdict := reward_verdict(case, scorer)) != case.correct]
    false_positives = [case for case, verdict in misses if verdict]
    false_negatives = [case for case, verdict in misses if not verdict]
    assert false_positives == []
    assert len(false_negatives) <= 0.02 * sum(case.correct for case in cases), false_negatives
