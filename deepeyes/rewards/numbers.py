"""Numbers in answers: one value with its sign, and the tolerance it is compared with.

An answer is read as a number when it is one (``-5``, ``1,200``, ``$5``, ``45%``,
``3.2 \\times 10^{5}``, ``3.2e5``, ``12 cm``, ``9 m^{2}``, ``25 km/h``, ``5个``, ``three apples``) or when it is a
short sentence holding exactly one number and nothing that changes it ("about 9 m^2", "There
are 5 apples"). Everything that changes a number is refused rather than guessed at: a second
number ("3 or 4"), an operator or comparison left in the sentence ("x + 5", "5!", "< 5"),
a negation or comparison word ("not 5", "less than 5", "不是5"). Values are
:class:`~decimal.Decimal`, so an integer ground truth compares exactly at any size and a
scientific exponent never overflows.

Comparison: integers exactly (``integer_exact``), other values with a *relative* tolerance —
an absolute one would call every pair of tiny values equal (``1e-9`` = ``2e-9``); the
absolute tolerance applies only to a ground truth of zero, where no relative one can.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

from deepeyes.rewards.normalize import strip_decoration

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TIMES = r"(?:\\times|\\cdot|×|·|\*|x)"
#: At most 15 digits: an exponent beyond Decimal's range (or int()'s digit limit) is not a number.
_EXPONENT = r"[-+]?\d{1,15}(?!\d)"
_VALUE = (
    rf"(?:(?P<mantissa>{_NUMBER})\s*{_TIMES}\s*10\s*(?:\^|\*\*)\s*(?:\{{\s*(?P<braced>{_EXPONENT})\s*\}}|(?P<bare>{_EXPONENT}))"
    rf"|(?P<plain>{_NUMBER}))"
)
#: A unit after a number: atoms (words in any script, ``°``, ``\\text{…}``), each with an optional
#: exponent (``^2``, ``^{-1}``, ``**2``), joined by ``/``, ``·``, ``*`` or spaces.
_UNIT_ATOM = r"(?:\\(?:text|mathrm|rm|textrm|mbox)\s*\{\s*[^{}]*\}|[^\W\d_]+|°)"
_UNIT_EXPONENT = r"(?:\s*\^\s*\{?\s*[-+]?\d+\s*\}?|\*\*[-+]?\d+)?"
_UNIT = rf"(?:\\?%|(?:\\[,;: ]|~)?\s*{_UNIT_ATOM}{_UNIT_EXPONENT}(?:\s*(?:/|·|\\cdot|\*|\s)\s*{_UNIT_ATOM}{_UNIT_EXPONENT})*)"
_WHOLE_RE = re.compile(rf"^\s*[$€£¥]?\s*{_VALUE}\s*{_UNIT}?\s*\.?\s*$")
#: A number standing on its own: not an exponent (``m^2``, ``e^-3``), not the base of a power
#: (``10^3``), not a factorial (``5!``), not digits inside a word or name (``CO2``, ``x_1``).
_STANDALONE_RE = re.compile(
    r"(?<![A-Za-z0-9_^.])(?<!\^\{)(?<!\^ )(?<!\*\*)(?<!\^[-+])(?<!\*\*[-+])(?<!\d,)"
    + _VALUE
    + r"(?![\d.]|\s*(?:\^|\*\*|!))"
)
_UNIT_AFTER_RE = re.compile(rf"\s*{_UNIT}")
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_INTEGER_RE = re.compile(r"^\s*[$€£¥]?\s*[-+]?\d+\s*%?\s*\.?\s*$")
_OPERATOR_RE = re.compile(r"[\d+\-*/=<>^|\\{}≠≤≥±∓×÷√∑∏∫!]")
#: Words that change or hedge a number; a sentence with any of them is not that number.
_REFUSED_WORDS = frozenset(
    (
        "not", "no", "never", "none", "neither", "nor", "either", "or", "without", "except", "minus", "negative",
        "less", "fewer", "more", "greater", "larger", "smaller", "higher", "lower", "under", "over", "above",
        "below", "than", "least", "most", "between", "isnt", "wasnt", "cannot", "cant", "wrong", "incorrect",
        "false"
    )
)
_REFUSED_CJK_RE = re.compile(r"[不没非无未否]|大于|小于|多于|少于|超过|以上|以下|至少|至多")
_WORD_RE = re.compile(r"[A-Za-z']+")
_UNITS_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"
)
_TENS_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
#: A number written as a word ("three", "Twenty-one").
_NUMBER_WORD_RE = re.compile(
    rf"\b(?:({'|'.join(_TENS_WORDS)})(?:[-\s]({'|'.join(_UNITS_WORDS[1:10])}))?|({'|'.join(_UNITS_WORDS)}))\b", re.IGNORECASE
)
#: Wide enough that no exponent an answer can write (the length cap bounds it) overflows.
_CONTEXT = decimal.Context(prec=50, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def _value(match: re.Match[str]) -> Decimal:
    if match.group("plain") is not None:
        return Decimal(match.group("plain"))
    exponent = int(match.group("braced") or match.group("bare"))
    return _CONTEXT.scaleb(Decimal(match.group("mantissa")), exponent)


def _refused(text: str) -> bool:
    words = {w.replace("'", "").lower() for w in _WORD_RE.findall(text)}
    return bool(words & _REFUSED_WORDS) or _REFUSED_CJK_RE.search(text) is not None


def _digits(match: re.Match[str]) -> str:
    tens, unit, alone = (g.lower() if g else None for g in match.groups())
    if alone:
        return str(_UNITS_WORDS.index(alone))
    return str(10 * (_TENS_WORDS.index(tens) + 2) + (_UNITS_WORDS.index(unit) if unit else 0))


def _digits_for_words(text: str) -> str:
    """``three apples`` → ``3 apples``: the VQA evaluation's number-word map (there zero–ten), to ninety-nine."""
    return _NUMBER_WORD_RE.sub(_digits, text)


def parse_number(text: str, *, sentence: bool = True) -> Decimal | None:
    """The value of an answer that is one number (see the module docstring), else ``None``.

    With ``sentence=False`` only a bare number (currency, unit, percent allowed) counts: that
    is how a ground truth is recognised as numeric.
    """
    text = _THOUSANDS_COMMA_RE.sub("", _digits_for_words(strip_decoration(text)))
    if _refused(text):
        return None
    whole = _WHOLE_RE.match(text)
    if whole:
        return _value(whole)
    if not sentence:
        return None
    found = list(_STANDALONE_RE.finditer(text))
    if len(found) != 1:
        return None
    number = found[0]
    unit = _UNIT_AFTER_RE.match(text, number.end())
    rest = text[: number.start()] + " " + text[unit.end() if unit else number.end() :]
    return None if _OPERATOR_RE.search(rest) else _value(number)


def is_integer_literal(text: str) -> bool:
    """A ground truth written as an integer (``12``, ``-3``, ``1,200``, ``45%``, ``three``): compared exactly."""
    return _INTEGER_RE.match(_THOUSANDS_COMMA_RE.sub("", _digits_for_words(strip_decoration(text)))) is not None


def numbers_match(answer: Decimal, ground_truth: Decimal, *, exact: bool, rel_tol: float, abs_tol: float) -> bool:
    """Exact, or within ``rel_tol`` of the ground truth; ``abs_tol`` only for a ground truth of 0."""
    if exact:
        return answer == ground_truth
    difference = _CONTEXT.abs(_CONTEXT.subtract(answer, ground_truth))
    if ground_truth == 0:
        return difference <= Decimal(repr(abs_tol))
    return difference <= _CONTEXT.multiply(Decimal(repr(rel_tol)), _CONTEXT.abs(ground_truth))
