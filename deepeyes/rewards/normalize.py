"""What an answer says once its decoration is gone, and the exact-text rule built on it.

Two kinds of characters reach a matcher: decoration, which models add around an answer
and which never changes what it says (Markdown bold, HTML underline, ``\\boxed{}``,
``$…$``, "The answer is", full-width forms, a final full stop), and meaning (signs,
operators, comparison symbols, digits, words). The first is removed here; the second is
never touched. In particular ``-`` ``+`` ``*`` ``/`` ``<`` ``>`` ``=`` ``^`` ``!`` survive
every normal form, so ``5``/``-5``, ``2*3``/``2/3`` and ``3 < 2``/``3 > 2`` stay different.

The prose form follows SQuAD's and the VQA evaluation's answer normalisation (lower case,
articles, punctuation, whitespace) with two corrections: an article is dropped only where it
precedes a word (so the answer ``a`` and the variable in ``a + b`` stay), and only sentence
punctuation is dropped, not a decimal point or thousands separator inside a number. Text is
NFKC-normalised first, which maps full-width letters, digits and brackets (``（Ｂ）``) to
ASCII; CJK sentence punctuation (``。，、``) is sentence punctuation like any other.
"""

from __future__ import annotations

import re
import unicodedata

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_SUPERSCRIPT_RUN_RE = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
#: After NFKC: the minus sign and the fraction slash are the ASCII operators they mean.
_CANONICAL = str.maketrans({"\u2212": "-", "\u2044": "/"})

#: Markdown and HTML emphasis around any span. The delimiters must sit at word edges, so
#: ``x**2 + y**2`` and ``2*3*4`` are maths, not bold or italics.
_MARKUP_RES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w*])", re.DOTALL), r"\1"),
    (re.compile(r"(?<![\w*\\])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])", re.DOTALL), r"\1"),
    (re.compile(r"(?<![\w\\])__(?=\S)(.+?)(?<=\S)__(?!\w)", re.DOTALL), r"\1"),
    (re.compile(r"(?<![\w\\])_(?=[^\s_])(.+?)(?<=[^\s_])_(?!\w)", re.DOTALL), r"\1"),
    (re.compile(r"`+([^`]+?)`+"), r"\1"),
    (re.compile(r"</?(?:b|strong|u|ins|i|em|mark|span|font)\b[^>]*>", re.IGNORECASE), ""),
    (re.compile(r"^\s*#{1,6}\s+", re.MULTILINE), ""),
)

_LEAD_IN_RE = re.compile(
    r"^\s*(?:(?:so|thus|therefore|hence)\s*,?\s*)?(?:the\s+|my\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?"
    r"(?:answer|result)\s*(?:is\s*:?|:|=)\s*"
    r"|^\s*(?:正确|最终)?答案\s*(?:是|为|:)?\s*"
    r"|^\s*是(?=[\u4e00-\u9fff])(?!的)",
    re.IGNORECASE,
)

#: LaTeX wrappers that only decorate an answer: ``\\boxed{B}``, ``\\fbox{B}``, ``\\text{B}``, ….
_WRAPPER_RE = re.compile(
    r"^\\(?:boxed|fbox|framebox|underline|emph|text|textbf|textit|textrm|textsf|texttt|textup|textnormal"
    r"|mathrm|mathbf|mathit|mathsf|mathtt|boldsymbol|bm|mbox|hbox|operatorname)\s*\{"
)
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_LATEX_TEXT_RE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}")

_QUOTES = str.maketrans("", "", "\"'`´‘’“”«»「」『』")
#: Sentence punctuation, Latin and CJK. ``. , :`` between digits and ``!`` after a digit or
#: a bracket (a factorial) are kept by :func:`_drop_sentence_punctuation`.
_SENTENCE_PUNCTUATION_RE = re.compile(r"[.,:;!?¡¿…。，、；：！？]")
_LIST_COMMA_RE = re.compile(r"(?<=\d),\s+(?=\d)")  # "1, 2" is "1,2"
_HYPHENATED_RE = re.compile(r"(?<=[^\W\d_]{2})-(?=[^\W\d_]{2})")
_ARTICLE_RE = re.compile(r"(?<![\w'])(?:a|an|the)\s+(?=[^\W\d_]{2})")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_SPACE_IN_CJK_RE = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACE_AROUND_OPERATOR_RE = re.compile(r"\s*([-+*/=<>^])\s*")
_HEDGES = frozenset(("maybe", "possibly", "perhaps", "probably", "might", "unsure", "uncertain", "depends"))
_LATEX_SPACING_RE = re.compile(r"\\(?:left|right|displaystyle|[,;:! ])|\s+")
_SMALL_FRACTION_RE = re.compile(r"\\[dt]frac\b")


def canonical(text: str) -> str:
    """Unicode variants folded: NFKC (full-width → ASCII), superscripts → ``^{…}``, ``−`` → ``-``.

    Superscripts are rewritten before NFKC, which would otherwise turn ``10⁵`` into ``105``.
    """
    text = _SUPERSCRIPT_RUN_RE.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", text)
    return unicodedata.normalize("NFKC", text).translate(_CANONICAL)


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
    """Remove LaTeX decoration that encloses the *whole* answer, repeatedly.

    ``$\\boxed{B}$`` → ``B``, ``\\fbox{\\text{(C)}}`` → ``(C)``, ``\\boxed{\\frac{1}{2}}`` →
    ``\\frac{1}{2}``. A wrapper that closes before the end (``\\text{a} + b``) is left alone.
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
    """Drop a leading "The answer is" / "Final answer:" / "答案是" / "是" ("it is") that models add."""
    return _LEAD_IN_RE.sub("", text, count=1)


def strip_decoration(text: str) -> str:
    """The answer without anything that decorates it (see the module docstring), repeatedly:
    ``**The answer is $\\boxed{B}$**`` → ``B``."""
    text = canonical(text)
    while True:
        before = text
        for pattern, replacement in _MARKUP_RES:
            text = pattern.sub(replacement, text)
        text = unwrap_answer(strip_lead_in(text))
        if text == before:
            return text


def _drop_sentence_punctuation(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        char, start = match.group(0), match.start()
        before = text[start - 1] if start else ""
        after = text[start + 1] if start + 1 < len(text) else ""
        if char in ".,:" and before.isdigit() and after.isdigit():
            return char  # 3.14, 1,200, 3:2
        if char == "!" and (before.isdigit() or before in ")}"):
            return char  # a factorial
        return " "

    return _SENTENCE_PUNCTUATION_RE.sub(replace, _LIST_COMMA_RE.sub(",", text))


def prose_form(text: str) -> str:
    """Case-, quote-, sentence-punctuation-, article- and whitespace-insensitive form of a short answer."""
    text = _LATEX_TEXT_RE.sub(r"\1", strip_decoration(text)).replace("$", "").lower()
    text = _HYPHENATED_RE.sub(" ", text.translate(_QUOTES))
    text = _ARTICLE_RE.sub("", _drop_sentence_punctuation(text))
    text = " ".join(text.split())
    return _SPACE_AROUND_OPERATOR_RE.sub(r"\1", _SPACE_IN_CJK_RE.sub("", text))


def math_form(text: str) -> str:
    """A formula without decoration, spacing and ``\\left``/``\\right``; case is kept (``X`` ≠ ``x``)."""
    text = _LATEX_SPACING_RE.sub("", strip_decoration(text).replace("$", ""))
    return _SMALL_FRACTION_RE.sub(r"\\frac", text).rstrip(".")


def texts_match(answer: str, ground_truth: str, *, formula: bool) -> bool:
    """The exact-text rule: equal normal forms (``math_form`` for formulas, else ``prose_form``)."""
    form = math_form if formula else prose_form
    normalized = form(answer)
    return bool(normalized) and normalized == form(ground_truth)


def yes_no(text: str) -> str | None:
    """``yes`` or ``no`` when an answer opens or closes with it and never says the other, else ``None``.

    VLMEvalKit's yes/no extraction (``YOrN_Extraction``) takes whichever of the two words
    appears alone; we also require it at an end of the answer, so "Yes, there is a dog" and
    "The cat is on the mat, so yes" are yes while "maybe yes, maybe not" is no answer. "Yes
    and no" names both and is refused, and so is a hedge ("possibly yes").
    """
    words = prose_form(text).split()
    said = {word for word in (words[:1] + words[-1:]) if word in ("yes", "no")}
    if len(said) != 1 or _HEDGES.intersection(words):
        return None
    polarity = said.pop()
    return None if ("no" if polarity == "yes" else "yes") in words else polarity
