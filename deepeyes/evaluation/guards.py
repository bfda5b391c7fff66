"""Data guards: faults of a benchmark that make its accuracy mean less, found at load time.

Three faults seen in the field, each reported (log, ``eval_results.json`` ``data_guards``,
the report), never fatal, never silent:

* **gold-letter bias** — a multiple-choice set whose gold answer is mostly one letter
  rewards a position bias (a DeepEyes pull request fixed a set whose gold answer was always
  A). For the rows with ``k`` options the most frequent gold letter is flagged when its share
  exceeds ``1/k + 0.15`` (40 % of 4-option rows, and the same margin over chance for other
  ``k``) among at least :data:`MIN_BIAS_ROWS` rows; fewer rows say nothing about a bias (one
  row is always 100 % one letter). The flag gives ``n`` and the binomial p-value of that
  count under a uniform gold letter, so a reader can tell bias from a small sample.
* **duplicate questions** — rows with the same question, options, hint and image bytes
  count twice in the accuracy.
* **answer not among the options** — a multiple-choice row whose answer is neither one of
  its letters nor one of its option texts can never be answered right.

The guards look at the rows evaluated (after ``MAX_SAMPLES``), which are the rows the
reported figures are about.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from typing import Any

from deepeyes.evaluation.datasets import EvalSample, gold_option

#: Over chance (1/k) by this much, the most frequent gold letter is flagged (k = 4 → 40 %).
BIAS_MARGIN = 0.15
#: Fewer rows with ``k`` options than this are not judged for a letter bias.
MIN_BIAS_ROWS = 5
#: Row indices listed per fault (every row is counted).
MAX_LISTED = 20


def _fingerprint(sample: EvalSample) -> str:
    digest = hashlib.sha1()
    for part in (" ".join(sample.question.lower().split()), sample.hint or "", repr(sorted((sample.choices or {}).items()))):
        digest.update(part.encode("utf-8") + b"\0")
    for image in sample.images:
        digest.update(hashlib.sha1(image).digest())
    return digest.hexdigest()


def _letter_bias(samples: list[EvalSample]) -> tuple[dict[str, dict[str, int]], list[str]]:
    by_k: dict[int, Counter[str]] = defaultdict(Counter)
    for sample in samples:
        letter = gold_option(sample)
        if letter is not None:
            by_k[len(sample.choices or {})][letter] += 1
    flags = []
    for k, counts in sorted(by_k.items()):
        n = sum(counts.values())
        letter, top = counts.most_common(1)[0]
        if n >= MIN_BIAS_ROWS and top / n > 1 / k + BIAS_MARGIN:
            from scipy.stats import binomtest

            p = binomtest(top, n, 1 / k, alternative="greater").pvalue
            flags.append(
                f"gold answer is {letter} in {top} of {n} {k}-option rows ({100 * top / n:.0f} %, chance {100 / k:.0f} %, "
                f"binomial p = {p:.2g}): a model that always picks {letter} scores {100 * top / n:.0f} % on them"
            )
    distribution = {str(k): dict(sorted(counts.items())) for k, counts in sorted(by_k.items())}
    return distribution, flags


def data_guards(samples: list[EvalSample]) -> dict[str, Any]:
    """The guard block of one dataset's evaluated rows.

    Keys: ``rows``, ``choice_rows``, ``gold_letters`` (option count → letter → rows),
    ``duplicate_rows`` (rows repeating an earlier row) and ``duplicates`` (groups of indices,
    first :data:`MAX_LISTED`), ``answer_not_in_options`` (count) and
    ``answer_not_in_options_rows`` (indices), and ``flags`` (one sentence per fault found).
    """
    choice_rows = [s for s in samples if s.choices]
    gold_letters, flags = _letter_bias(samples)

    groups: dict[str, list[str]] = defaultdict(list)
    for sample in samples:
        groups[_fingerprint(sample)].append(sample.index)
    duplicates = [indices for indices in groups.values() if len(indices) > 1]
    duplicate_rows = sum(len(indices) - 1 for indices in duplicates)
    if duplicate_rows:
        shown = "; ".join(", ".join(group) for group in duplicates[:3])
        flags.append(f"{duplicate_rows} row(s) repeat an earlier row (same question, options and image), e.g. indices {shown}")

    orphans = [s.index for s in choice_rows if gold_option(s) is None]
    if orphans:
        flags.append(
            f"{len(orphans)} multiple-choice row(s) have an answer that is none of their options "
            f"(never scorable as right), e.g. indices {', '.join(orphans[:5])}"
        )
    return {
        "rows": len(samples),
        "choice_rows": len(choice_rows),
        "gold_letters": gold_letters,
        "duplicate_rows": duplicate_rows,
        "duplicates": duplicates[:MAX_LISTED],
        "answer_not_in_options": len(orphans),
        "answer_not_in_options_rows": orphans[:MAX_LISTED],
        "flags": flags,
    }
