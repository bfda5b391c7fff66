"""The maths check itself, run inside a worker process (:mod:`deepeyes.rewards.pool`).

math-verify decides equivalence (``1/2`` = ``0.5`` = ``\\frac{1}{2}``, ``(x+1)^2`` =
``x^2+2x+1``); this module then re-checks every *numeric* verdict it returns, because
math-verify compares values that are not plain numbers with ``(a - b).evalf(chop=True) == 0``
(``grader.sympy_numeric_eq``), and ``chop`` rounds anything below about 1e-15 to zero:
``\\frac{1}{2^{98}}`` = ``\\frac{1}{2^{99}}`` and ``\\frac{1}{2006!}`` = ``\\frac{1}{2004!}`` pass.
Here two exact values (rationals, factorials) must be equal, and any other pair of values
must agree to a relative ``RELATIVE_TOLERANCE``.

Importing this module pays math-verify's one-time set-up (sympy, the LaTeX grammar, a first
check of each kind); the pool's template process imports it once, so every worker it forks
starts warm.
"""

from __future__ import annotations

import logging
from typing import Any

from math_verify import parse, verify
from math_verify.grader import get_pct_val
from sympy import Basic, FiniteSet, Interval, Tuple
from sympy.core.relational import Relational

#: A decimal answer to an exact value agrees to five significant digits (0.333333 ≈ 1/3,
#: 1.414214 ≈ √2); math-verify's own six-decimal rounding must hold as well.
RELATIVE_TOLERANCE = 1e-5
_CONTAINERS = (Tuple, FiniteSet, Interval)

# math-verify warns once that its SIGALRM timeout is off: the pool's budget replaces it.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def parse_math(text: str) -> Any:
    """math-verify's reading of ``text`` (a sympy object), or ``None``.

    A bare expression is tried as LaTeX first (``2^{1/2}`` is √2 there but ``2`` as a plain
    expression), then as a plain expression (``sqrt(3)/2``).
    """
    for attempt in ([text] if "$" in text else [f"${text}$", text]):
        parsed = parse(attempt, parsing_timeout=None)
        if parsed and not isinstance(parsed[0], str):
            return parsed[0]
    return None


def _is_number(expr: Any) -> bool:
    return isinstance(expr, Basic) and bool(expr.is_number) and not isinstance(expr, Relational)


def values_agree(gold: Any, pred: Any) -> bool:
    """Whether two objects math-verify called equal also agree value by value (see the docstring).

    Containers (tuples, sets, intervals) and relations agree element by element; a formula
    with free symbols is left to math-verify.
    """
    if isinstance(gold, Relational) and isinstance(pred, Relational):
        same = values_agree(gold.lhs, pred.lhs) and values_agree(gold.rhs, pred.rhs)
        return same or (values_agree(gold.lhs, pred.rhs) and values_agree(gold.rhs, pred.lhs))
    if isinstance(gold, Relational) or isinstance(pred, Relational):  # x = 5 against 5: the value side
        return values_agree(gold.rhs if isinstance(gold, Relational) else gold, pred.rhs if isinstance(pred, Relational) else pred)
    if isinstance(gold, _CONTAINERS) and type(gold) is type(pred) and len(gold.args) == len(pred.args):
        return all(values_agree(g, p) for g, p in zip(gold.args, pred.args, strict=True))
    if not (_is_number(gold) and _is_number(pred)):
        return True
    exact_gold, exact_pred = get_pct_val(gold, gold).doit(), get_pct_val(pred, pred).doit()
    if exact_gold.is_Rational and exact_pred.is_Rational:
        return bool(exact_gold == exact_pred)
    a, b = exact_gold.evalf(30), exact_pred.evalf(30)
    if not (a.is_finite and b.is_finite):
        return bool(a == b)
    return bool(abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b)))


def equivalent(answer: str, ground_truth: str) -> bool:
    """math-verify's verdict, with numeric verdicts re-checked by :func:`values_agree`."""
    gold, pred = parse_math(ground_truth), parse_math(answer)
    if gold is None or pred is None:
        return False
    return bool(verify(gold, pred, timeout_seconds=None)) and values_agree(gold, pred)


def math_verify_alone(answer: str, ground_truth: str) -> bool:
    """math-verify's own verdict, nothing else: the baseline ``benchmarks/reward_conformance.py`` prints.

    Each side is read as math-verify's README writes it (``$…$``, then bare), with no
    decoration removed, no prose refused and no re-check of its numeric verdicts.
    """
    def read(text: str) -> list[Any]:
        return parse(text if "$" in text else f"${text}$", parsing_timeout=None) or parse(text, parsing_timeout=None)

    return bool(verify(read(ground_truth), read(answer), timeout_seconds=None))


# Pay the one-time set-up at import, i.e. once in the pool's template process, whose forked
# workers inherit it: the LaTeX grammar, and sympy's lazy imports and caches for each kind of
# check (a first polynomial comparison alone took 5-11 s on the loaded 2-core machine).
for _answer, _truth in (("1", "1"), ("(x+1)^2", "x^2+2x+1"), ("\\frac{1}{2}", "0.5"), ("\\sqrt{2}", "1.414214"), ("(1, 2)", "(1, 2)"), ("x \\geq 5", "x \\ge 5")):
    equivalent(_answer, _truth)
