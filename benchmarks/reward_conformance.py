"""Answer-matching conformance: false positives and false negatives by kind, ours beside math-verify.

Runs the generated corpus of :mod:`deepeyes.rewards.conformance` ((ground truth, answer,
verdict) triples over signs, units, percent, scientific notation, fractions, expressions,
option letters and texts, yes/no, articles, CJK, decorations, hedges, empty and over-long
answers, huge values) through

* **ours**: the reward's accuracy, on the same path as ``POST /score`` (the answer inside
  ``<think>r</think>\\n<answer>…</answer>``, rules only, no judge);
* **math_verify**: ``verify(parse(gt), parse(answer))`` alone (each side in ``$…$``),
  under the same per-check time budget, in a worker process.

A false positive is a wrong answer scored right (what a policy learns to exploit); a false
negative is a right answer scored wrong. Targets for ours: 0 false positives, at most 2 %
false negatives overall. Prints one row per kind, then the totals; ``--show_misses`` lists
every case either side got wrong.

    .venv/bin/python benchmarks/reward_conformance.py [--seed 0] [--math_timeout_s 5] [--show_misses]
"""

from __future__ import annotations

import argparse
import collections
import time
from dataclasses import dataclass, field

from deepeyes.rewards.config import RewardConfig
from deepeyes.rewards.conformance import KINDS, Case, corpus, reward_verdict
from deepeyes.rewards.maths import pool
from deepeyes.rewards.scoring import RewardScorer

_BASELINE = "deepeyes.rewards.maths_worker:math_verify_alone"


@dataclass
class Tally:
    cases: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    timeouts: int = 0
    misses: list[tuple[Case, bool]] = field(default_factory=list)

    def add(self, case: Case, verdict: bool, timed_out: bool = False) -> None:
        self.cases += 1
        self.timeouts += timed_out
        if verdict != case.correct:
            self.misses.append((case, verdict))
            if verdict:
                self.false_positives += 1
            else:
                self.false_negatives += 1


def _math_verify_verdict(case: Case, timeout_s: float) -> tuple[bool, bool]:
    """math-verify alone on one case: (verdict, timed out). A failure or a timeout is "wrong"."""
    outcome = pool().call(_BASELINE, case.answer, case.ground_truth, timeout_s=timeout_s)
    return bool(outcome.value), outcome.error is not None and "timed out" in outcome.error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    parser.add_argument("--math_timeout_s", type=int, default=RewardConfig.math_timeout_s,
                        help="per-check time budget for both sides, seconds (default: %(default)s)")
    parser.add_argument("--show_misses", action="store_true", help="list every case either side got wrong")
    args = parser.parse_args(argv)

    cases = corpus(args.seed)
    scorer = RewardScorer(RewardConfig(math_timeout_s=args.math_timeout_s))
    scorer.warm_up()
    ours: dict[str, Tally] = collections.defaultdict(Tally)
    baseline: dict[str, Tally] = collections.defaultdict(Tally)
    ours_s = baseline_s = 0.0
    for case in cases:
        start = time.perf_counter()
        ours[case.kind].add(case, reward_verdict(case, scorer))
        middle = time.perf_counter()
        baseline[case.kind].add(case, *_math_verify_verdict(case, args.math_timeout_s))
        ours_s += middle - start
        baseline_s += time.perf_counter() - middle

    header = f"{'kind':<24}{'cases':>6}{'right':>6}{'wrong':>6} | {'ours FP':>8}{'ours FN':>8} | {'m-v FP':>8}{'m-v FN':>8}{'m-v t/o':>8}"
    print(header)
    print("-" * len(header))
    for kind in (make.__name__ for make in KINDS):
        o, b = ours[kind], baseline[kind]
        right = sum(case.correct for case in cases if case.kind == kind)
        print(f"{kind:<24}{o.cases:>6}{right:>6}{o.cases - right:>6} | {o.false_positives:>8}{o.false_negatives:>8} | "
              f"{b.false_positives:>8}{b.false_negatives:>8}{b.timeouts:>8}")
    print("-" * len(header))
    right_total = sum(case.correct for case in cases)
    totals = {name: Tally(sum(t.cases for t in side.values()), sum(t.false_positives for t in side.values()),
                          sum(t.false_negatives for t in side.values()), sum(t.timeouts for t in side.values()))
              for name, side in (("ours", ours), ("math_verify", baseline))}
    o, b = totals["ours"], totals["math_verify"]
    print(f"{'total':<24}{len(cases):>6}{right_total:>6}{len(cases) - right_total:>6} | {o.false_positives:>8}{o.false_negatives:>8} | "
          f"{b.false_positives:>8}{b.false_negatives:>8}{b.timeouts:>8}")
    for name, tally, seconds in (("ours", o, ours_s), ("math_verify", b, baseline_s)):
        print(f"{name:<12} false positives {tally.false_positives} ({tally.false_positives / (len(cases) - right_total):.1%} of wrong answers), "
              f"false negatives {tally.false_negatives} ({tally.false_negatives / right_total:.1%} of right answers), "
              f"{seconds:.1f} s ({seconds / len(cases) * 1000:.1f} ms per case)")
    if args.show_misses:
        for name, side in (("ours", ours), ("math_verify", baseline)):
            for tally in side.values():
                for case, verdict in tally.misses:
                    label = "FP" if verdict else "FN"
                    print(f"{name:<12}{label} {case.kind:<22} gt={case.ground_truth!r} answer={case.answer[:70]!r}")


if __name__ == "__main__":
    main()
