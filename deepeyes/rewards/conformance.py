"""A generated corpus of (ground truth, answer, verdict) triples, by kind, for answer matching.

Each kind is one way an answer can say the ground truth (or seem to): signs, units,
percent and scientific notation on numbers; fractions and LaTeX; expressions, equations and
comparisons; option letters and option texts; yes/no; free text with articles; CJK and
full-width forms; Markdown/HTML/LaTeX decoration; hedges over several options; empty and
over-long answers; formulas whose value is astronomically large. The verdict is what a
careful human grader says; where graders would disagree the case is left out, so every
miss is a real one. ``benchmarks/reward_conformance.py`` runs the corpus through the reward
(and through math-verify alone) and ``tests/rewards/test_reward_conformance.py`` holds the
reward to it: no false positive, at most 2 % false negatives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from deepeyes.rewards.payload import request_from_response
from deepeyes.rewards.scoring import RewardScorer


@dataclass(frozen=True)
class Case:
    kind: str
    ground_truth: str
    answer: str
    correct: bool
    choices: dict[str, str] | None = None
    answer_type: str | None = None


_OPTION_POOLS = (
    ("black", "white", "red", "blue", "green", "yellow", "purple", "orange"),
    ("cat", "dog", "horse", "rabbit", "tiger", "parrot", "goat", "bear"),
    ("circle", "square", "triangle", "hexagon", "star", "oval", "pentagon", "diamond"),
)
_LETTERS = "ABCD"


def _options(rng: random.Random) -> dict[str, str]:
    pool = rng.choice(_OPTION_POOLS)
    return dict(zip(_LETTERS, rng.sample(pool, len(_LETTERS)), strict=True))


def _flip(number: str) -> str:
    return number[1:] if number.startswith("-") else "-" + number


def numbers_signs(rng: random.Random) -> Iterator[Case]:
    kind = "numbers_signs"
    values = [str(rng.randint(1, 999)) for _ in range(8)] + [str(-rng.randint(1, 999)) for _ in range(8)]
    values += [f"{rng.choice((-1, 1)) * rng.randint(100, 9999) / 100:g}" for _ in range(6)]
    for value in values:
        for right in (value, value + ".", f"The answer is {value}", f"${value}$"):
            yield Case(kind, value, right, True)
        yield Case(kind, value, value.replace("-", "−") if value.startswith("-") else "+" + value, True)
        for wrong in (_flip(value), "−" + value.lstrip("-") if not value.startswith("-") else value.lstrip("-"),
                      f"not {value}", f"less than {value}"):
            yield Case(kind, value, wrong, False)
        if "." not in value:
            yield Case(kind, value, str(int(value) + 1), False)


def numbers_units_percent(rng: random.Random) -> Iterator[Case]:
    kind = "numbers_units_percent"
    for _ in range(8):
        value = rng.randint(1000, 99999)
        grouped = f"{value:,}"
        for right in (f"{value} cm", f"{value} m^2", f"{value}\\,\\text{{kg}}", grouped, f"${grouped}",
                      f"{value} apples", f"There are {value} apples.", f"about {grouped} m²"):
            yield Case(kind, str(value), right, True)
        yield Case(kind, grouped, str(value), True)
        for wrong in (f"{value + 1} cm", f"-{value} cm", f"{value * 10} cm", f"{value}! apples", f"{grouped}0"):
            yield Case(kind, str(value), wrong, False)
    for value, word in ((3, "three"), (12, "Twelve"), (21, "twenty-one"), (7, "seven"), (40, "Forty")):
        for right in (word, f"{word}.", f"{word} apples", f"There are {word} apples."):
            yield Case(kind, str(value), right, True)
        for wrong in (f"not {word}", f"{word} or more", "eleven"):
            yield Case(kind, str(value), wrong, False)
    for _ in range(8):
        percent = rng.randint(11, 99)
        for right in (str(percent), f"{percent} %", f"{percent}\\%", f"{percent} percent", f"{percent}.0%"):
            yield Case(kind, f"{percent}%", right, True)
        for wrong in (f"{percent + 1}%", f"-{percent}%", f"{percent / 10:g}%", f"{percent}0%"):
            yield Case(kind, f"{percent}%", wrong, False)


def numbers_scientific(rng: random.Random) -> Iterator[Case]:
    kind = "numbers_scientific"
    for _ in range(10):
        mantissa, exponent = rng.choice(("1.5", "2.25", "3.2", "6.02", "9.1", "4.8")), rng.choice((-9, -6, -4, 3, 5, 7, 8, 11))
        truth = f"{mantissa} \\times 10^{{{exponent}}}"
        for right in (f"{mantissa}e{exponent}", f"{mantissa}E{exponent:+d}", f"{mantissa} × 10^{exponent}",
                      f"{mantissa}\\cdot10^{{{exponent}}}", f"{mantissa}*10**{exponent}", f"{mantissa} x 10^{exponent}",
                      f"${mantissa} \\times 10^{{{exponent}}}$", f"{mantissa} × 10{_superscript(exponent)}"):
            yield Case(kind, truth, right, True)
        for wrong in (f"{mantissa}e{exponent + 1}", f"{mantissa}e{-exponent}", mantissa, f"-{mantissa}e{exponent}",
                      f"{mantissa} \\times 10^{{{exponent - 1}}}"):
            yield Case(kind, truth, wrong, False)
        if exponent > 0:
            plain = str(int(Fraction(mantissa) * 10**exponent))
            yield Case(kind, plain, f"{mantissa}e{exponent}", True)
            yield Case(kind, plain, f"{mantissa} \\times 10^{{{exponent}}}", True)
            yield Case(kind, plain, f"{mantissa}e{exponent - 1}", False)


def _superscript(number: int) -> str:
    return str(number).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def fractions_latex(rng: random.Random) -> Iterator[Case]:
    kind = "fractions_latex"
    for _ in range(10):
        denominator = rng.randint(3, 12)
        numerator = rng.choice([n for n in range(1, 2 * denominator) if Fraction(n, denominator).denominator == denominator])
        truth = f"\\frac{{{numerator}}}{{{denominator}}}"
        value = Fraction(numerator, denominator)
        for right in (f"{numerator}/{denominator}", f"\\dfrac{{{numerator}}}{{{denominator}}}",
                      f"\\frac{{{2 * numerator}}}{{{2 * denominator}}}", f"\\boxed{{{truth}}}", f"{float(value):.6f}"):
            yield Case(kind, truth, right, True)
        for wrong in (f"\\frac{{{denominator}}}{{{numerator}}}", f"-{truth}", f"\\frac{{{numerator + 1}}}{{{denominator}}}",
                      f"{numerator}/{denominator + 1}"):
            yield Case(kind, truth, wrong, False)
        rounded = f"{float(value):.2f}"
        yield Case(kind, truth, rounded, Fraction(rounded) == value)  # 0.33 is not 1/3; 0.25 is 1/4
    for _ in range(6):
        power = rng.randint(40, 200)
        truth = f"\\frac{{1}}{{2^{{{power}}}}}"
        yield Case(kind, truth, f"2^{{-{power}}}", True)
        for wrong in (f"\\frac{{1}}{{2^{{{power + 1}}}}}", f"\\frac{{1}}{{2^{{{power - 1}}}}}", "0", f"\\frac{{1}}{{3^{{{power}}}}}"):
            yield Case(kind, truth, wrong, False)
    for _ in range(6):
        n = rng.randint(20, 2010)
        truth = f"\\frac{{1}}{{{n}!}}"
        yield Case(kind, truth, f"\\dfrac{{1}}{{{n}!}}", True)
        for wrong in (f"\\frac{{1}}{{{n + 2}!}}", f"\\frac{{1}}{{{n - 1}!}}", f"\\frac{{2}}{{{n}!}}"):
            yield Case(kind, truth, wrong, False)
    for _ in range(6):
        radicand = rng.choice((2, 3, 5, 6, 7, 10, 11, 13))
        truth = f"\\sqrt{{{radicand}}}"
        for right in (f"{radicand}^{{1/2}}", f"sqrt({radicand})", f"\\sqrt{{ {radicand} }}"):
            yield Case(kind, truth, right, True)
        for wrong in (f"\\sqrt{{{radicand + 1}}}", f"{radicand}^{{2}}", f"-\\sqrt{{{radicand}}}"):
            yield Case(kind, truth, wrong, False)


def expressions_equations(rng: random.Random) -> Iterator[Case]:
    kind = "expressions_equations"
    for _ in range(6):
        a, b = rng.sample(range(2, 10), 2)
        cases = {
            f"x^2 + {a}": ([f"{a} + x^2", f"x^{{2}}+{a}"], [f"x^2 - {a}", f"x^2 + {a + 1}", f"-x^2 + {a}"]),
            f"(x+{a})^2": ([f"x^2+{2 * a}x+{a * a}", f"(x + {a})^{{2}}"], [f"x^2+{a * a}", f"(x-{a})^2"]),
            f"y = {a}x + {b}": ([f"y={a}x+{b}", f"y = {b} + {a}x"], [f"y = {a}x - {b}", f"y = -{a}x + {b}", f"y = {b}x + {a}"]),
            f"x = {a}": ([str(a), f"x={a}"], [f"x = -{a}", str(a + 1)]),
            f"x > {a}": ([f"{a} < x", f"x>{a}"], [f"x < {a}", f"x \\geq {a}", f"x > -{a}"]),
            f"{a + b} > {a}": ([f"{a} < {a + b}"], [f"{a + b} < {a}"]),
            f"{a}/{b}": ([f"\\frac{{{a}}}{{{b}}}"], [f"{a}*{b}", f"{a}\\cdot {b}"]),
        }
        for truth, (rights, wrongs) in cases.items():
            for right in rights:
                yield Case(kind, truth, right, True)
            for wrong in wrongs:
                yield Case(kind, truth, wrong, False)
    for truth, rights, wrongs in (
        ("a + b", ["b + a", "a+b"], ["a - b", "a \\cdot b"]),
        ("a - b", ["-b + a"], ["a + b", "b - a"]),
        ("2x - 3y", ["-3y + 2x"], ["2x + 3y", "3y - 2x"]),
        ("x \\leq 4", ["4 \\geq x"], ["x < 4", "x \\geq 4"]),
    ):
        for right in rights:
            yield Case(kind, truth, right, True)
        for wrong in wrongs:
            yield Case(kind, truth, wrong, False)


def option_letters(rng: random.Random) -> Iterator[Case]:
    kind = "option_letters"
    for _ in range(8):
        choices = _options(rng)
        letter, other = rng.sample(_LETTERS, 2)
        text, other_text = choices[letter], choices[other]
        for form in ("{L}", "({L})", "{L}.", "{L}) {T}", "{L}. {T}", "{L}, {T}", "{L}: {T}", "The answer is {L}", "Answer: {L}",
                     "Option {L}", "[{L}]", "I choose {L}", "{L} is correct", "({L}) is correct", "I think {L}", "I'd say {L}.",
                     "The answer should be {L}", "The answer is option ({L}) {T}", "So the answer is {L}, {T}.",
                     "The image shows {T}, so the answer is {L}."):
            yield Case(kind, letter, form.format(L=letter, T=text), True, choices)
            yield Case(kind, letter, form.format(L=other, T=other_text), False, choices)
        yield Case(kind, letter, letter.lower(), True, choices)
        yield Case(kind, letter, f"{letter}. {other_text}", False, choices)  # letter and text disagree
        yield Case(kind, letter, other_text, False, choices)


def option_text(rng: random.Random) -> Iterator[Case]:
    kind = "option_text"
    for _ in range(8):
        choices = _options(rng)
        letter, other = rng.sample(_LETTERS, 2)
        text, other_text = choices[letter], choices[other]
        for form in ("{T}", "{U}", "{L}", "\\boxed{{\\text{{{L}}}}}", "{L}. {T}", "({L}) {T}", "The answer is {T}"):
            yield Case(kind, text, form.format(L=letter, T=text, U=text.upper()), True, choices)
            yield Case(kind, text, form.format(L=other, T=other_text, U=other_text.upper()), False, choices)
        yield Case(kind, text, f"{other}. {text}", False, choices)


def yes_no(rng: random.Random) -> Iterator[Case]:
    kind = "yes_no"
    sentences = {
        "Yes": ["yes", "Yes.", "YES", "Yes, there is.", "Yes, the cat is on the mat.", "yes!", "Yes, it is red.",
                "There is a cat on the mat, so yes."],
        "No": ["no", "No.", "NO", "No, there is not.", "No, the cat is not on the mat.", "no!", "No, it is blue.",
               "The cat is not on the mat, so no."],
    }
    hedges = ["Yes and no", "yes or no", "Maybe", "I'm not sure", "No, yes", "Yes? No.", "It depends", "Possibly yes"]
    for truth, rights in sentences.items():
        opposite = "No" if truth == "Yes" else "Yes"
        for right in rights:
            yield Case(kind, truth, right, True)
        for wrong in sentences[opposite] + hedges:
            yield Case(kind, truth, wrong, False)
    for truth in ("yes", "no"):
        yield Case(kind, truth, truth.capitalize() + ".", True)


def free_text_articles(rng: random.Random) -> Iterator[Case]:
    kind = "free_text_articles"
    pool = ["the Eiffel Tower", "a cat", "an apple", "Paris", "the Amazon River", "Mount Everest", "a red car",
            "the moon", "blue whale", "an umbrella", "the Great Wall", "Tokyo"]
    for truth in pool:
        bare = truth.split(" ", 1)[1] if truth.split(" ", 1)[0] in ("a", "an", "the") else truth
        for right in (bare, bare.lower(), truth.upper(), f"{bare}.", f"'{bare}'", f"The {bare}", f"The answer is {truth}"):
            yield Case(kind, truth, right, True)
        for wrong in rng.sample([p for p in pool if p != truth], 3) + [f"not {bare}", f"{bare}s" if " " not in bare else f"{bare} tower"]:
            yield Case(kind, truth, wrong, False)
    # one-letter answers that are also English words
    for truth, answer, correct, answer_type in (
        ("a", "a", True, None), ("a", "A", True, None), ("a", "an", False, None), ("a", "b", False, None),
        ("A", "A", True, "text"), ("A", "a", True, "text"), ("A", "(A)", False, "text"), ("A", "B", False, "text"),
        ("I", "I", True, "text"), ("I", "i", True, "text"), ("I", "me", False, "text"),
    ):
        yield Case(kind, truth, answer, correct, answer_type=answer_type)


def cjk_fullwidth(rng: random.Random) -> Iterator[Case]:
    kind = "cjk_fullwidth"
    places = ["北京", "上海", "长城", "熊猫", "东京", "富士山"]
    for truth in places:
        for right in (f"{truth}。", f"{truth}！", f"答案是{truth}", f"{truth} 。", f"**{truth}**", f"「{truth}」", f"答案：{truth}",
                      f"是{truth}。"):
            yield Case(kind, truth, right, True)
        for wrong in rng.sample([p for p in places if p != truth], 2) + [f"不是{truth}"]:
            yield Case(kind, truth, wrong, False)
    for right, wrong in (("（B）", "（C）"), ("Ｂ", "Ｃ"), ("答案：B", "答案：C"), ("答案是Ｂ", "答案是Ａ"), ("选B", "选D"), ("【B】", "【C】")):
        yield Case(kind, "B", right, True)
        yield Case(kind, "B", wrong, False)
    for right, wrong in (("５", "６"), ("5个", "6个"), ("５个苹果", "－５个苹果"), ("答案是5", "不是5"), ("共5只", "共15只")):
        yield Case(kind, "5", right, True)
        yield Case(kind, "5", wrong, False)
    yield Case(kind, "12.5", "１２．５", True)
    yield Case(kind, "12.5", "１２５", False)
    yield Case(kind, "-3", "－３", True)
    yield Case(kind, "-3", "３", False)


def decorations(rng: random.Random) -> Iterator[Case]:
    kind = "decorations"
    choices = _options(rng)
    letter_forms = ("**{X}**", "__{X}__", "<u>{X}</u>", "<b>{X}</b>", "`{X}`", "\\textbf{{{X}}}", "\\underline{{{X}}}",
                    "The correct answer is **{X}**", "### Answer: {X}", "*{X}*", "**Answer:** {X}", "$\\boxed{{{X}}}$",
                    "<strong>{X}</strong>", "\\boxed{{\\textbf{{{X}}}}}")
    for form in letter_forms:
        yield Case(kind, "B", form.format(X="B"), True, choices)
        yield Case(kind, "B", form.format(X="C"), False, choices)
    yield Case(kind, "B", f"**B. {choices['B']}**", True, choices)
    yield Case(kind, "B", f"**C. {choices['C']}**", False, choices)
    for truth, wrongs in (("42", ("-42", "24", "43")), ("Paris", ("London", "Lyon", "Rome")), ("\\frac{1}{2}", ("\\frac{1}{3}", "-\\frac{1}{2}", "2"))):
        for form in ("**{X}**", "$\\boxed{{{X}}}$", "`{X}`", "<b>{X}</b>", "**Answer:** {X}", "\\textbf{{{X}}}", "*{X}*", "<u>{X}</u>"):
            if truth.startswith("\\") and form in ("`{X}`", "<b>{X}</b>", "<u>{X}</u>"):
                continue
            yield Case(kind, truth, form.format(X=truth), True)
            yield Case(kind, truth, form.format(X=rng.choice(wrongs)), False)


def hedging(rng: random.Random) -> Iterator[Case]:
    kind = "hedging"
    choices = _options(rng)
    forms = ("A, B", "A or B", "A and B", "Both A and B", "A/B", "(A)(B)", "(A) (B)", "**A** or **B**", "Either A or B",
             "A, B, C, D", "A (or B)", "The answer is A or B", "A; B", "A & B", "A B", "\\boxed{A, B}", "A or maybe B", "B, A",
             "A, B or C", "not sure between A and B")
    for truth in ("A", "B"):
        for form in forms:
            yield Case(kind, truth, form, False, choices)
    for _ in range(4):
        value = rng.randint(3, 500)
        for form in (f"{value} or {value + 1}", f"{value - 1} or {value}", f"{value}, {value + 1}",
                     f"between {value - 1} and {value + 1}", f"{value} or more", f"{value - 1}-{value + 1}", f"{value} ± 1"):
            yield Case(kind, str(value), form, False)
    for truth, answers in (
        ("Paris", ("Paris or London", "London or Paris", "Paris, London", "either Paris or Lyon")),
        ("Yes", ("yes or no", "no or yes")),
        ("x = 2", ("x = 2 or x = 3", "x = 2, x = -2", "x = \\pm 2")),
        ("\\frac{1}{2}", ("\\frac{1}{2} or \\frac{1}{3}", "\\frac{1}{3} or \\frac{1}{2}")),
    ):
        for answer in answers:
            yield Case(kind, truth, answer, False)


def empty_overlong(rng: random.Random) -> Iterator[Case]:
    kind = "empty_overlong"
    for truth in ("5", "B", "Paris", "\\frac{1}{2}", "Yes"):
        for empty in ("", "   ", "\\boxed{}", "****", "$$"):
            yield Case(kind, truth, empty, False)
        padding = "Let me look at the image carefully and reason about it step by step. " * 4
        for long in (padding + f"So the answer is {truth}.", f"{truth} " * 80, " ".join([truth, "A", "B", "C", "7", "red"] * 20)):
            yield Case(kind, truth, long, False)


def huge_values(rng: random.Random) -> Iterator[Case]:
    kind = "huge_values"
    for truth, answer in (("1", "9^{9^{9}}"), ("0", "\\frac{1}{9^{9^{9}}}"), ("5", "2^{2^{2^{2^{2^{2}}}}}"), ("1", "10^{10^{10}}"),
                          ("100", "(10^{6})!"), ("7", "99999!"), ("0", "1e-999999"), ("1", "9**9**9"), ("3", "3^{3^{3^{3}}}"),
                          ("0", "10^{-10^{10}}"), ("2", "\\frac{9^{9^{9}}}{9^{9^{9}}}"), ("1", "(10^{100})!")):
        yield Case(kind, truth, answer, False)
    for truth, answer in (("1267650600228229401496703205376", "2^{100}"), ("2432902008176640000", "20!"),
                          ("\\frac{1}{2006!}", "\\frac{1}{2006!}"), ("2^{1000}", "2^{1000}"), ("1024", "2^{10}"), ("120", "5!")):
        yield Case(kind, truth, answer, True)


KINDS = (numbers_signs, numbers_units_percent, numbers_scientific, fractions_latex, expressions_equations, option_letters,
         option_text, yes_no, free_text_articles, cjk_fullwidth, decorations, hedging, empty_overlong, huge_values)


def corpus(seed: int = 0) -> list[Case]:
    """Every kind's cases, reproducibly for a seed."""
    rng = random.Random(seed)
    return [case for make in KINDS for case in make(rng)]


def response_for(answer: str) -> str:
    """The model output ``/score`` receives for ``answer``: one thought, then the answer."""
    return f"<think>r</think>\n<answer>{answer}</answer>"


def reward_verdict(case: Case, scorer: RewardScorer) -> bool:
    """The reward's accuracy verdict on one case, through the same path as ``POST /score``."""
    request = request_from_response(response_for(case.answer), case.ground_truth, choices=case.choices, answer_type=case.answer_type)
    return scorer.score(request)["accuracy"] == 1.0

