"""The maths rule: is this formula the ground truth's formula? Bounded in time and size.

Three checks, cheapest first:

1. the answer must *be* a formula: words other than maths vocabulary ("not 1/2", "1/2 or
   1/3", CJK text) are refused, because math-verify extracts some number from any prose and
   would grade that;
2. the size pre-check (:mod:`deepeyes.rewards.formula_size`): a formula asking for a number
   of more than ``MAX_DIGITS`` digits (``9^{9^{9}}``, ``9^{(9^{9})}``, ``e^{e^{e^{9}}}``,
   ``(10^{6})!``, ``1e999999``) is refused at once, with the reason recorded, instead of
   asking sympy to compute it;
3. math-verify plus the exactness re-check (:mod:`deepeyes.rewards.maths_worker`), in a
   worker process under a wall-clock budget (:mod:`deepeyes.rewards.pool`): whatever the
   pre-check misses, a check that runs past it is killed, scored wrong and the reason
   recorded. That budget, not the pre-check, is the bound.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from deepeyes.rewards.formula_size import too_large
from deepeyes.rewards.normalize import strip_decoration
from deepeyes.rewards.pool import WorkerPool

_MATH_WORDS = frozenset(
    (
        "sqrt", "frac", "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh",
        "tanh", "log", "ln", "lg", "exp", "pi", "infty", "inf", "oo", "infinity", "lim", "max", "min", "gcd", "lcm",
        "mod", "deg", "det", "cdot", "times", "div", "pm", "mp", "le", "ge", "leq", "geq", "neq", "ne", "lt", "gt",
        "approx", "left", "right", "circ", "degree", "cup", "cap", "in", "notin", "emptyset", "varnothing",
        "mathbb", "dfrac", "tfrac", "boxed", "text", "mathrm"
    )
)
_HINT_RE = re.compile(
    r"[\\^_{}=*/<>≤≥≠!]|\bsqrt\b|\bpi\b|\d\s*[+\-]\s*\d|[A-Za-z]\s*[+\-]\s*[A-Za-z0-9]"
    r"|^\s*[(\[]\s*-?[\w.]+\s*,\s*-?[\w.]+\s*[)\]]\s*$"  # a tuple or an interval
)
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_WORD_RE = re.compile(r"[^\W\d_]{2,}")
#: Characters outside ASCII that formulas use (operators, Greek letters); any other is prose.
_NON_FORMULA_RE = re.compile(r"[^\x00-\x7f×·÷±∓≤≥≠≈√∞°\u0370-\u03ff]")
_DANGLING_RE = re.compile(
    r"^\s*(?:[*/^=<>≤≥≠≈~]|\\(?:geq?|leq?|gt|lt|neq?|approx|sim|pm|mp)\b)|(?:[-+*/^=<>≤≥≠≈~±∓]|\\(?:geq?|leq?|gt|lt|neq?|pm|mp|cdot|times|div))\s*$"
)
_E_NOTATION_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d*)?|\.\d+)[eE]([-+]?\d+)(?![\w.])")
_WORKER_MODULE = "deepeyes.rewards.maths_worker"
_EQUIVALENT = f"{_WORKER_MODULE}:equivalent"


@dataclass(frozen=True)
class MathVerdict:
    equal: bool
    reason: str | None = None  # why no verdict could be reached (size, time), else None


def looks_like_math(ground_truth: str) -> bool:
    """A ground truth written as a formula (LaTeX, operators, comparisons, fractions, a pair or
    interval such as ``(1, 2)``) rather than prose."""
    if "$" in ground_truth or "\\" in ground_truth:
        return True
    words = {w.lower() for w in re.findall(r"[A-Za-z]{2,}", ground_truth)}
    return bool(_HINT_RE.search(ground_truth)) and words <= _MATH_WORDS


def is_formula(text: str) -> bool:
    """No prose and nothing left open: every word of two or more letters (outside LaTeX command
    names) is maths vocabulary, and no operator or comparison dangles at either end ("5+" is
    "5 or more", "≥ 5" a bound; math-verify reads both as 5)."""
    words = _WORD_RE.findall(_COMMAND_RE.sub(" ", text))
    return (
        _NON_FORMULA_RE.search(text) is None
        and _DANGLING_RE.search(text) is None
        and all(w.lower() in _MATH_WORDS for w in words)
    )


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prepare(text: str) -> str:
    """The formula math-verify is given: decoration removed, ``3.2e5`` written ``3.2\\times 10^{5}``
    (math-verify reads ``e`` as Euler's number)."""
    return _E_NOTATION_RE.sub(r"\1\\times 10^{\2}", strip_decoration(text))


@functools.cache
def _pool(pid: int) -> WorkerPool:
    """One pool per process (a forked child must not share its parent's pipes)."""
    return WorkerPool(size=min(4, os.cpu_count() or 1), preload=(_WORKER_MODULE,))


def pool() -> WorkerPool:
    return _pool(os.getpid())


def maths_match(answer: str, ground_truth: str, timeout_s: float) -> MathVerdict:
    """math-verify equivalence, refused for prose, bounded in size and in time (module docstring)."""
    answer, ground_truth = prepare(answer), prepare(ground_truth)
    if not answer or not is_formula(answer):
        return MathVerdict(False)
    for side, text in (("answer", answer), ("ground truth", ground_truth)):
        reason = too_large(text)
        if reason:
            return MathVerdict(False, f"{side} too large: {reason}")
    outcome = pool().call(_EQUIVALENT, answer, ground_truth, timeout_s=timeout_s)
    if outcome.error is not None:
        return MathVerdict(False, f"math check failed: {outcome.error}")
    return MathVerdict(bool(outcome.value))
