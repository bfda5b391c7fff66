"""How large a number a formula asks for, read from its text before any maths library sees it.

sympy evaluates ``9^{9^{9}}`` by computing a 370-million-digit integer in one C call that
nothing interrupts, and ``e^{e^{e^{9}}}``, ``(10^{6})!`` or ``\\binom{10^{9}}{5 \\cdot 10^{8}}``
are no better. The worker's time budget (:mod:`deepeyes.rewards.pool`) is what finally bounds
any check; this reader refuses the obvious cases at once, without spending that budget.

The formula is read by a small recursive-descent parser (numbers, ``+ - * / ^ ** !``,
brackets, implicit products, ``\\frac``, ``\\sqrt``, ``\\binom``, ``\\exp``, ``\\Gamma``,
``e``, ``\\pi``; any other name is a symbol), and every numeric sub-formula gets two upper
bounds from its text alone, never from its value:

* ``magnitude``: log10 of its absolute value;
* ``size``: the decimal digits needed to write it exactly (numerator and denominator of a
  rational, so ``0.5^{10^{9}}`` and ``1.0000001^{10^{9}}`` count as large as they are).

Bounds compose as the operations do (a power's size is its exponent's value times its
base's size; a factorial's is ``log10(n!)``), and a formula is refused when any sub-formula
needs more than ``MAX_DIGITS`` digits, or raises a *symbol* or a root to a power beyond
``MAX_SYMBOLIC_EXPONENT`` (sympy expands such powers term by term; a root counts as a symbol). A formula the reader
cannot follow is not refused here: the time budget remains.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Largest integer (in decimal digits) a formula may ask for; 2006! has 5,720.
MAX_DIGITS = 10_000
#: Largest exponent of a symbolic or irrational power (``(x+1)^{n}``, ``(1+\\sqrt{2})^{n}``): sympy
#: expands those term by term, and ``(x+1)^{9000}`` outlasts any budget.
MAX_SYMBOLIC_EXPONENT = 1_000
#: Past this depth of brackets a formula is refused (no answer needs it; Python's stack does).
MAX_DEPTH = 200
_LOG10_2 = math.log10(2)
_LOG10_E = math.log10(math.e)

_TOKEN_RE = re.compile(
    r"(?P<space>\s+|\\[,;:! ]|\\(?:left|right|displaystyle|limits|quad|qquad|big|Big|bigg|Bigg)(?![A-Za-z]))"
    r"|(?P<number>\d+(?:\.\d*)?|\.\d+)"
    r"|(?P<command>\\[A-Za-z]+|\\.)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>\*\*|.)",
    re.DOTALL,
)
_ADDITIVE = frozenset(("+", "-", "\\pm", "\\mp"))
_MULTIPLICATIVE = frozenset(("*", "/", "\\cdot", "\\times", "\\div", "\\ast"))
_OPENERS = {"(": ")", "[": "]", "{": "}", "\\{": "\\}", "|": "|", "\\lfloor": "\\rfloor", "\\lceil": "\\rceil"}
_CLOSERS = frozenset((")", "]", "}", "\\}", "|", "\\rfloor", "\\rceil"))
_FRACTIONS = frozenset(("\\frac", "\\dfrac", "\\tfrac", "\\cfrac"))
_BINOMIALS = frozenset(("\\binom", "\\dbinom", "\\tbinom"))
_GAMMA = frozenset(("\\Gamma", "gamma", "Gamma", "factorial"))
_TEXT_COMMANDS = frozenset(("\\text", "\\mathrm", "\\operatorname", "\\textrm", "\\mathit", "\\mbox"))
#: Constants: (log10 of the value, the same as size: sympy keeps ``E**n`` and ``pi**n`` symbolic).
_CONSTANTS = {"e": (_LOG10_E, _LOG10_E), "\\pi": (0.5, 0.5), "pi": (0.5, 0.5)}


class TooLarge(Exception):
    """A sub-formula asks for a number past the limits; the message says which and how large."""


@dataclass(frozen=True)
class Bound:
    """Upper bounds of one numeric sub-formula (module docstring); ``None`` stands for a symbolic one."""

    magnitude: float
    size: float


def _exp10(x: float) -> float:
    return math.inf if x > 300 else 10.0**x


def _times(count: float, size: float) -> float:
    return 0.0 if size <= 0 else count * size


def _digits_bound(digits: str) -> float:
    digits = digits.lstrip("0")
    if not digits:
        return 0.0
    return math.log10(int(digits)) if len(digits) < 300 else float(len(digits))


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, int]] = []  # (token, start offset)
        for match in _TOKEN_RE.finditer(text):
            if match.lastgroup != "space":
                self.tokens.append((match.group(), match.start()))
        self.index = 0
        self.depth = 0

    # -- tokens ------------------------------------------------------------------------------
    def peek(self) -> str | None:
        return self.tokens[self.index][0] if self.index < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.index][0]
        self.index += 1
        return token

    def source(self, start: int) -> str:
        """The text of the tokens from ``start`` up to the current one."""
        begin = self.tokens[start][1] if start < len(self.tokens) else len(self.text)
        end = self.tokens[self.index][1] if self.index < len(self.tokens) else len(self.text)
        return _shorten(self.text[begin:end].strip())

    def check(self, bound: Bound | None, start: int) -> Bound | None:
        if bound is not None and bound.size > MAX_DIGITS:
            raise TooLarge(f"{self.source(start)} has about {bound.size:.2g} digits (limit {MAX_DIGITS:,})")
        return bound

    # -- grammar -------------------------------------------------------------------------------
    def formula(self) -> None:
        """Every expression of the text, past separators (``,``, ``=``, ``<`` …) and stray closers."""
        while self.peek() is not None:
            before = self.index
            self.expression()
            if self.index == before:
                self.take()

    def expression(self) -> Bound | None:
        start = self.index
        bound = self.term()
        while self.peek() in _ADDITIVE:
            self.take()
            other = self.term()
            if bound is None or other is None:
                bound = None
            else:
                bound = self.check(Bound(max(bound.magnitude, other.magnitude) + _LOG10_2, bound.size + other.size + _LOG10_2), start)
        return bound

    def term(self) -> Bound | None:
        start = self.index
        bound = self.signed()
        while True:
            token = self.peek()
            if token in _MULTIPLICATIVE:
                self.take()
                dividing = token in ("/", "\\div")
            elif token is not None and self.starts_primary(token):
                dividing = False  # an implicit product: 2x, 9\cdot 9^{9}, 3(4)
            else:
                return bound
            other = self.signed()
            if bound is None or other is None:
                bound = None
            else:
                magnitude = bound.magnitude + (other.size if dividing else other.magnitude)
                bound = self.check(Bound(magnitude, bound.size + other.size), start)

    def signed(self) -> Bound | None:
        if self.peek() in _ADDITIVE:
            self.take()
            return self.signed()
        return self.power()

    def power(self) -> Bound | None:
        start = self.index
        base = self.postfix()
        if self.peek() not in ("^", "**"):
            return base
        self.take()
        exponent = self.group() if self.peek() == "{" else self.signed()  # right-associative: a^b^c = a^(b^c)
        if exponent is None:
            return None
        count = _exp10(exponent.magnitude)
        if base is None:
            if count > MAX_SYMBOLIC_EXPONENT:
                raise TooLarge(f"{self.source(start)} raises a symbol to about {count:.2g} (limit {MAX_SYMBOLIC_EXPONENT:,})")
            return None
        # |a^b| <= 10^(|b| * max(log10|a|, digits of a)): the second covers |a| < 1 with b < 0.
        result = Bound(_times(count, max(base.magnitude, base.size)), _times(count, base.size))
        return self.postfix_of(self.check(result, start), start)

    def postfix(self) -> Bound | None:
        start = self.index
        return self.postfix_of(self.primary(), start)

    def postfix_of(self, bound: Bound | None, start: int) -> Bound | None:
        while self.peek() == "!":
            self.take()
            bound = self.factorial(bound, start)
        return bound

    def factorial(self, argument: Bound | None, start: int) -> Bound | None:
        if argument is None:
            return None
        n = _exp10(argument.magnitude)
        if n > 3 * MAX_DIGITS:  # n! has more than n digits past n = 25
            raise TooLarge(f"{self.source(start)} has more than {MAX_DIGITS:,} digits")
        digits = math.lgamma(n + 1) / math.log(10)
        return self.check(Bound(digits, digits), start)

    def starts_primary(self, token: str) -> bool:
        if token in _CLOSERS or token in _ADDITIVE or token in _MULTIPLICATIVE or token == "|":
            return False
        return token[0].isdigit() or token[0] in "(.[{\\" or token[0].isalpha()

    def group(self) -> Bound | None:
        """A bracketed expression; the closer is optional (text cut short)."""
        self.take()  # the opening bracket
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooLarge(f"brackets nested deeper than {MAX_DEPTH}")
        bound = self.expression()
        while self.peek() == ",":  # a tuple or an interval: each element is checked, the whole is no number
            self.take()
            self.expression()
            bound = None
        if self.peek() in _CLOSERS:
            self.take()
        self.depth -= 1
        return bound

    def argument(self) -> Bound | None:
        """A function's argument: a bracketed group, or the next factor (``\\sqrt 2``, ``\\exp x``)."""
        token = self.peek()
        if token is None:
            return None
        return self.group() if token in _OPENERS else self.power()

    def primary(self) -> Bound | None:
        token = self.peek()
        if token is None or token in _CLOSERS and token != "|" or token in _MULTIPLICATIVE or token in ("^", "**", "!"):
            return None
        start = self.index
        self.take()
        if token[0].isdigit() or token[0] == ".":
            whole, _, fraction = token.partition(".")
            return Bound(_digits_bound(whole), _digits_bound(whole + fraction) + len(fraction))
        if token in _OPENERS:
            self.index -= 1
            return self.group()
        if token in _CONSTANTS:
            return Bound(*_CONSTANTS[token])
        if token in _FRACTIONS:
            numerator, denominator = self.argument(), self.argument()
            if numerator is None or denominator is None:
                return None
            return self.check(Bound(numerator.magnitude + denominator.size, numerator.size + denominator.size), start)
        if token in _BINOMIALS:
            n, _ = self.argument(), self.argument()
            if n is None:
                return None
            digits = _times(_exp10(n.magnitude), _LOG10_2)  # C(n, k) <= 2^n
            return self.check(Bound(digits, digits), start)
        if token in ("\\sqrt", "sqrt"):
            if self.peek() == "[":
                self.group()
            self.argument()
            return None  # irrational in general: powers of it expand like a symbol's
        if token in ("\\exp", "exp"):
            return self.exponential(self.argument(), start)
        if token in _GAMMA:
            return self.factorial(self.argument(), start)
        if token in _TEXT_COMMANDS:
            if self.peek() == "{":
                depth = 0
                while self.peek() is not None:  # skip the text, brackets balanced
                    inner = self.take()
                    depth += {"{": 1, "}": -1}.get(inner, 0)
                    if depth == 0:
                        break
            return None
        if token.startswith("\\") or token.isalpha():
            # Any other name: a symbol, or a function whose arguments are still checked (\sin(10^{10^{9}})).
            while self.peek() in ("_", "^") and token.startswith("\\"):
                self.take()
                self.argument()
            if self.peek() in ("(", "{"):
                self.argument()
            return None
        return None

    def exponential(self, exponent: Bound | None, start: int) -> Bound | None:
        if exponent is None:
            return None
        digits = _times(_exp10(exponent.magnitude), _LOG10_E)
        return self.check(Bound(digits, digits), start)


def too_large(text: str) -> str | None:
    """Why ``text`` asks for a number past the limits (module docstring), else ``None``."""
    reader = _Reader(text)
    try:
        reader.formula()
    except TooLarge as exc:
        return str(exc)
    except (RecursionError, IndexError, ValueError, OverflowError):
        return None  # a shape the reader does not follow: the worker's time budget still bounds it
    return None

