"""Which option a multiple-choice answer picks, found through the decoration models add.

The rule follows VLMEvalKit's option extraction (``can_infer_option`` / ``can_infer_text``
in ``vlmeval/utils/matching_util.py``) and MMBench's circular evaluation: an answer picks
an option when it names exactly one option letter, or (given the options) says exactly one
option's text; naming two or more letters is a hedge and picks nothing, however they are
separated ("A, B", "A or B", "(A)(B)", "both A and B"). Decoration is removed first
(:func:`deepeyes.rewards.normalize.strip_decoration`): ``**B**``, ``<u>B</u>``, ``[B]``,
``\\boxed{\\text{B}}``, ``Answer: B``, full-width ``（Ｂ）``.

The English article "A" and the pronoun "I" are letters only when they stand for an option:
"B. A white cat" names one option, "A or B" two.
"""

from __future__ import annotations

import re

from deepeyes.rewards.normalize import canonical, prose_form, strip_decoration

_GROUND_TRUTH_RE = re.compile(r"^\s*\(?([A-J])\)?\.?\s*$")
_ALONE_RE = re.compile(r"^[(\[{<【]?([A-Ja-j])[)\]}>】]?\s*[.:)]?$")
_WITH_TEXT_RE = re.compile(r"^(?:[(\[]([A-J])[)\]]|([A-J])\s*[.:),]|([A-J])\s+[-–—])\s*(\S.*)$", re.DOTALL)
_OPTION = r"[(\[]?([A-J])[)\]]?(?![A-Za-z0-9])"
#: An option named inside a sentence: "the answer is B", "option (C)", "I choose D", "I think
#: it's A", "(B) is correct", "答案是B", "选C".
_NAMED_RE = re.compile(
    r"(?:(?i:\b(?:answer|option|choice)\s*(?:(?:is|should\s+be|must\s+be|would\s+be)\s*:?|:)?\s*(?:option\s+|choice\s+)?)"
    r"|(?i:\bI(?:\s+would|'d)?\s+(?:choose|pick|select|go\s+with|say|think|believe)\s+(?:(?:it\s+is|it's)\s+)?(?:option\s+)?)"
    r"|(?:选项|答案\s*(?:是|为)?|选)\s*:?\s*)" + _OPTION
    + r"|(?<![A-Za-z0-9])[(\[]?([A-J])[)\]]?\s+(?i:is\s+(?:the\s+)?(?:correct|right|best))\b"
)
_LETTER_RE = re.compile(r"(?<![A-Za-z0-9'’])([A-J])(?![A-Za-z0-9'’])")
#: After "A" or "I", a lower-case word other than a conjunction makes it a word, not an option.
_WORD_AFTER_RE = re.compile(r"\s+(?!(?:or|and|nor|vs|versus)\b)[a-z]")


def choice_letter(ground_truth: str) -> str | None:
    """The letter of a multiple-choice ground truth (``B``, ``(B)``, ``B.``, ``Ｂ``), else ``None``."""
    match = _GROUND_TRUTH_RE.match(canonical(ground_truth))
    return match.group(1) if match else None


def option_letters(text: str) -> set[str]:
    """Every distinct option letter ``text`` names ("A, B" → {A, B}; "A cat" → {})."""
    letters = set()
    for match in _LETTER_RE.finditer(text):
        if match.group(1) in "AI" and _WORD_AFTER_RE.match(text, match.end()):
            continue
        letters.add(match.group(1))
    return letters


def option_by_text(text: str, choices: dict[str, str]) -> str | None:
    """The one option whose text ``text`` says (prose normal form), else ``None``."""
    wanted = prose_form(text)
    found = [letter.upper() for letter, option in choices.items() if wanted and prose_form(option) == wanted]
    return found[0] if len(found) == 1 else None


def extract_choice(answer: str, choices: dict[str, str] | None = None) -> str | None:
    """The option letter ``answer`` picks, or ``None`` (no option, a hedge, or a contradiction).

    "B. black" where option A is "black" contradicts itself and picks nothing.
    """
    text = strip_decoration(answer)
    if len(option_letters(text)) > 1:
        return None
    alone = _ALONE_RE.match(text)
    if alone:
        return alone.group(1).upper()
    with_text = _WITH_TEXT_RE.match(text)
    if with_text:
        letter = with_text.group(1) or with_text.group(2) or with_text.group(3)
        said = option_by_text(with_text.group(4), choices) if choices else None
        return letter if said in (None, letter) else None
    named = {a or b for a, b in _NAMED_RE.findall(text)}
    if len(named) == 1:
        return named.pop()
    return option_by_text(text, choices) if choices else None
