"""Rule-based answer matching: normalised text, numbers, multiple-choice letters, maths.

Each matcher answers one question — does this answer mean the ground truth? — for one
kind of ground truth, and ``infer_answer_type`` picks the kind when the data does not
say. The rules are strict on purpose (no substring matching): an RL policy will find any
leniency and learn to exploit it.
"""

from __future__ import annotations

import functools
import math
import re
import string
import threading
import unicodedata
from typing import Literal

AnswerType = Literal["text", "number", "choice", "math"]
ANSWER_TYPES: tuple[str, ...] = ("auto", "text", "number", "choice", "math")

_LEAD_IN_RE = re.compile(r"^\s*(?:so\s*,?\s*)?(?:the\s+)?(?:final\s+)?(?:answer|result)\s*(?:is|:|=)\s*", re.IGNORECASE)
_LATEX_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}")
_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})

_NUMBER_TOKEN = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_TOKEN_RE = re.compile(_NUMBER_TOKEN)
#: A number that stands on its own: not an exponent (``m^2``, ``m^{2}``, ``e^-3``, ``x**2``),
#: not the base of a power (``10^3``) and not digits inside a word or name (``CO2``, ``x_1``).
_STANDALONE_NUMBER_RE = re.compile(
    r"(?<![\w^.])(?<!\^\{)(?<!\^ )(?<!\*\*)(?<!\^[-+])(?<!\*\*[-+])"
    + _NUMBER_TOKEN
    + r"(?![\d.]|\s*(?:\^|\*\*))"
)
_THOUSANDS_COMMA_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PURE_NUMBER_RE = re.compile(r"^\s*[$€£]?\s*(" + _NUMBER_TOKEN + r")\s*%?\s*$")

_CHOICE_GT_RE = re.compile(r"^\s*\(?([A-J])\)?\.?\s*$")
_CHOICE_ALONE_RE = re.compile(r"^\s*[\(\[]?([A-Ja-j])[\)\]]?\s*[.:)]?\s*$")
_CHOICE_WITH_TEXT_RE = re.compile(r"^\s*(?:\(([A-J])\)|([A-J])\s*[.:)])\s*\S")
_CHOICE_LEAD_IN_RE = re.compile(
    r"\b(?:answer|option|choice)\s*(?:is|:)?\s*(?:option\s+)?[\(\[]?([A-J])[\)\]]?(?![A-Za-z0-9])", re.IGNORECASE
)

#: LaTeX wrappers that only decorate an answer: ``\\boxed{B}``, ``\\fbox{B}``, ``\\text{B}``, ….
_WRAPPER_RE = re.compile(r"^\\(?:boxed|fbox|framebox|text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))

#: A unit after a number: atoms (letters, ``°``, ``µ``, ``Ω``, ``\text{…}``/``\mathrm{…}``), each with
#: an optional exponent (``^2``, ``^{-1}``, ``**2``, ``²``, ``⁻¹``), joined by ``/``, ``·``, ``*`` or spaces.
_UNIT_ATOM = r"(?:\\(?:text|mathrm|rm)\s*\{\s*[^{}]*\}|[A-Za-zµμΩ°]+)"
_UNIT_EXPONENT = r"(?:\s*\^\s*\{?\s*[-+]?\d+\s*\}?|\*\*[-+]?\d+|[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)?"
_UNIT = rf"{_UNIT_ATOM}{_UNIT_EXPONENT}(?:\s*(?:/|·|\\cdot|\*|\s)\s*{_UNIT_ATOM}{_UNIT_EXPONENT})*"
_NUMBER_WITH_UNIT_RE = re.compile(
    r"^\s*[$€£]?\s*(" + _NUMBER_TOKEN + r")\s*(?:\\?%|(?:\\[,;: ]|~)?\s*" + _UNIT + r")?\s*\.?\s*$"
)
#: A standalone option letter (not part of a word); the hedge check collects these.
_STANDALONE_LETTER_RE = re.compile(r"(?<![A-Za-z0-9'’])([A-J])(?![A-Za-z0-9'’])")

_MATH_HINT_RE = re.compile(r"[\\^_{}=*/]|\bsqrt\b|\bpi\b|\d\s*[+\-]\s*\d|[a-z]\s*[+\-]\s*\d")
_MATH_WORDS = {"sqrt", "frac", "sin", "cos", "tan", "log", "ln", "exp", "pi", "infty", "cdot", "times", "left", "right"}


def _closing_brace(text: str, open_index: int) -> int:
    """Index of the ``}`` that closes the ``{`` at ``open_index``; -1 when unbalanced."""
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def unwrap_answer(text: str) -> str:
    """Remove decoration that encloses the *whole* answer, repeatedly.

    ``$\\boxed{B}$`` → ``B``, ``\\fbox{\\text{(C)}}`` → ``(C)``, ``\\boxed{\\frac{1}{2}}`` →
    ``\\frac{1}{2}``. A wrapper that closes before the end (``\\text{a} + b``) is left alone.
    Models trained on maths data box every answer, so an unwrapped letter or word must
    count the same as a bare one.
    """
    text = text.strip()
    while True:
        before = text
        for opening, closing in _MATH_DELIMITERS:
            if len(text) > len(opening) + len(closing) and text.startswith(opening) and text.endswith(closing):
                text = text[len(opening) : -len(closing)].strip()
                break
        match = _WRAPPER_RE.match(text)
        if match and _closing_brace(text, match.end() - 1) == len(text) - 1:
            text = text[match.end() : -1].strip()
        if text == before:
            return text


def strip_lead_in(text: str) -> str:
    """Drop a leading "The answer is" / "Answer:" that models add around the answer."""
    return _LEAD_IN_RE.sub("", text, count=1)


def normalize_text(text: str) -> str:
    """Case-, punctuation-, article- and whitespace-insensitive form of a short answer."""
    text = unwrap_answer(unicodedata.normalize("NFKC", text))
    text = _LATEX_TEXT_RE.sub(r"\1", text).replace("$", "")
    text = strip_lead_in(text).lower()
    text = text.translate(_PUNCTUATION)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def texts_match(answer: str, ground_truth: str) -> bool:
    normalized = normalize_text(answer)
    return bool(normalized) and normalized == normalize_text(ground_truth)


# ---- numbers ---------------------------------------------------------------------------

def parse_number_with_unit(text: str) -> float | None:
    """The value of "number + optional unit": ``9 m^2``, ``9\\,\\text{m}^{2}``, ``25 km/h``, ``3 m s^-1``.

    Only one number may appear, so exponents inside the unit are not read as a second
    number and hedges such as "3 or 4" still fail (``None``).
    """
    cleaned = _THOUSANDS_COMMA_RE.sub("", strip_lead_in(unwrap_answer(text)))
    match = _NUMBER_WITH_UNIT_RE.match(cleaned)
    return float(match.group(1)) if match else None


def parse_pure_number(text: str) -> float | None:
    """The value of a string that is just a number (commas, currency, % allowed)."""
    match = _PURE_NUMBER_RE.match(_THOUSANDS_COMMA_RE.sub("", text))
    return float(match.group(1)) if match else None


def extract_single_number(text: str) -> float | None:
    """The one number in an answer such as "12 cm" or "$1,200"; ``None`` if zero or several.

    Several numbers are refused rather than guessed at, so that listing candidates
    ("3 or 4 or 5") never earns credit. Exponents and digits inside words are not numbers
    of the answer: ``m^2`` or ``CO2`` holds none (so neither matches a ground truth 2), and
    "about 9 m^2" holds one, 9.
    """
    with_unit = parse_number_with_unit(text)
    if with_unit is not None:
        return with_unit
    cleaned = _THOUSANDS_COMMA_RE.sub("", strip_lead_in(unwrap_answer(text)))
    tokens = _STANDALONE_NUMBER_RE.findall(cleaned)
    return float(tokens[0]) if len(tokens) == 1 else None


def is_integer_literal(text: str) -> bool:
    match = _PURE_NUMBER_RE.match(_THOUSANDS_COMMA_RE.sub("", text))
    return bool(match) and re.fullmatch(r"[-+]?\d+", match.group(1)) is not None


def numbers_match(answer: float, ground_truth: float, *, exact: bool, rel_tol: float, abs_tol: float) -> bool:
    if exact:
        return math.isclose(answer, ground_truth, rel_tol=0.0, abs_tol=1e-9)
    return math.isclose(answer, ground_truth, rel_tol=rel_tol, abs_tol=abs_tol)


# ---- multiple choice -------------------------------------------------------------------

def choice_letter(ground_truth: str) -> str | None:
    """The letter of a multiple-choice ground truth ("B", "(B)", "B."), else ``None``."""
    match = _CHOICE_GT_RE.match(ground_truth)
    return match.group(1) if match else None


def option_letters(answer: str) -> set[str]:
    """Every distinct standalone capital option letter A-J in ``answer`` ("A, B" → {A, B}).

    The pronoun "I" followed by a word ("I think") is not an option.
    """
    letters = set()
    for match in _STANDALONE_LETTER_RE.finditer(answer):
        rest = answer[match.end() :]
        if match.group(1) == "I" and re.match(r"\s+[a-z]", rest):
            continue
        letters.add(match.group(1))
    return letters


def extract_choice(answer: str, choices: dict[str, str] | None = None) -> str | None:
    """The option letter an answer picks: "B", "(B)", "B. red", "The answer is B", ``\\boxed{B}``,
    or an option's text; ``None`` for a hedge naming several options ("A, B", "A or B", "A/B")."""
    answer = unwrap_answer(answer)
    if len(option_letters(answer)) > 1:
        return None
    for pattern in (_CHOICE_ALONE_RE, _CHOICE_WITH_TEXT_RE):
        match = pattern.match(answer)
        if match:
            return next(g for g in match.groups() if g).upper()
    letters = {m.upper() for m in _CHOICE_LEAD_IN_RE.findall(answer)}
    if len(letters) == 1:
        return letters.pop()
    if choices:
        normalized = normalize_text(answer)
        picked = [letter.upper() for letter, text in choices.items() if normalize_text(text) == normalized]
        if len(picked) == 1:
            return picked[0]
    return None


# ---- maths -----------------------------------------------------------------------------

def looks_like_math(ground_truth: str) -> bool:
    """A ground truth written as a formula (LaTeX, operators, fractions) rather than prose."""
    if "$" in ground_truth or "\\" in ground_truth:
        return True
    words = {w.lower() for w in re.findall(r"[A-Za-z]{2,}", ground_truth)}
    return bool(_MATH_HINT_RE.search(ground_truth)) and words <= _MATH_WORDS


def _parse_math(text: str, timeout_s: int | None) -> list:
    from math_verify import (
        parse,  # heavy import (sympy, antlr): only when maths is scored
    )

    # A bare expression is tried as LaTeX first ("2^{1/2}" is √2 there but "2" as a plain
    # expression), then as a plain expression ("sqrt(3)/2").
    attempts = [text] if ("$" in text or "\\boxed" in text) else [f"${text}$", text]
    for attempt in attempts:
        parsed = parse(attempt, parsing_timeout=timeout_s)
        if parsed and not isinstance(parsed[0], str):
            return parsed
    return []


@functools.cache
def _warm_math_verify() -> None:
    """Pay math-verify's one-time grammar and sympy set-up outside any timeout.

    On a busy machine that set-up alone can exceed the per-call timeout, which would turn
    the first maths comparison of a process into a spurious "wrong".
    """
    from math_verify import parse, verify

    verify(parse("$1$", parsing_timeout=None), parse("$1$", parsing_timeout=None), timeout_seconds=None)


def maths_match(answer: str, ground_truth: str, timeout_s: int) -> bool:
    """math-verify equivalence ("1/2" == "0.5" == "\\frac{1}{2}").

    math-verify times out with SIGALRM, which only exists on the main thread; on worker
    threads (threaded server, batch pool) the timeout is off and the answer length cap
    bounds the work instead.
    """
    from math_verify import verify

    _warm_math_verify()
    on_main_thread = threading.current_thread() is threading.main_thread()
    timeout = timeout_s if on_main_thread and timeout_s > 0 else None
    gold = _parse_math(ground_truth, timeout)
    predicted = _parse_math(strip_lead_in(answer), timeout)
    if not gold or not predicted:
        return False
    return bool(verify(gold, predicted, timeout_seconds=timeout))


def infer_answer_type(ground_truth: str) -> AnswerType:
    """Which matcher a ground truth calls for when the data does not say."""
    if choice_letter(ground_truth):
        return "choice"
    if parse_pure_number(ground_truth) is not None:
        return "number"
    if looks_like_math(ground_truth):
        return "math"
    return "text"
