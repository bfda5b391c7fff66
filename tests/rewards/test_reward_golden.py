"""Golden cases: known answers and outputs with the reward each must get."""

from __future__ import annotations

import pytest

from deepeyes import wire
from deepeyes.rewards import RewardConfig, score_response
from deepeyes.rewards.accuracy import evaluate_accuracy

DEFAULT = RewardConfig()


def answered(answer: str) -> str:
    """A one-turn, well-formed response that answers ``answer`` directly."""
    return wire.think("reasoning") + wire.answer_action(answer)


# (ground truth, model answer, correct?, deciding rule)
ACCURACY_CASES = [
    # maths: math-verify equivalences
    ("\\frac{1}{2}", "0.5", True, "math"),
    ("\\frac{1}{2}", "1/2", True, "math"),
    ("0.5", "\\frac{1}{2}", True, "math"),
    ("x^2+2x+1", "(x+1)^2", True, "math"),
    ("\\sqrt{2}", "2^{1/2}", True, "math"),
    ("\\frac{\\sqrt{3}}{2}", "sqrt(3)/2", True, "math"),
    ("x+1", "1+x", True, "math"),
    ("\\boxed{4}", "4", True, "math"),
    ("x+1", "x+2", False, "math"),
    ("\\frac{1}{3}", "0.33", False, "math"),
    # multiple choice letters
    ("B", "B", True, "exact"),
    ("B", "(B)", True, "exact"),
    ("B", "B. red", True, "choice"),
    ("B", "B) red", True, "choice"),
    ("B", "(B) red", True, "choice"),
    ("B", "The answer is B", True, "exact"),
    ("B", "Answer: (B)", True, "exact"),
    ("B", "Option B", True, "choice"),
    ("B", "b", True, "exact"),
    ("(C)", "C", True, "exact"),
    ("B", "C", False, "choice"),
    ("B", "A or B", False, "choice"),
    ("B", "B and C", False, "choice"),
    # numbers with tolerance
    ("3.14", "3.1416", True, "numeric"),
    ("3.14", "3.2", False, "numeric"),
    ("12", "12.0", True, "numeric"),
    ("12", "12.05", False, "numeric"),
    ("1,200", "1200", True, "numeric"),
    ("1200", "$1,200", True, "numeric"),
    ("45%", "45.0 %", True, "numeric"),
    ("12", "12 cm", True, "numeric"),
    ("12", "11 or 12", False, "math"),
    ("0", "0.0", True, "numeric"),
    ("-2.5", "-2.5", True, "exact"),
    # free text (no judge configured)
    ("Paris", "paris.", True, "exact"),
    ("The Eiffel Tower", "eiffel tower", True, "exact"),
    ("Paris", "The answer is Paris", True, "exact"),
    ("Paris", "Paris, France", False, "text"),
    ("red", "blue", False, "text"),
]


@pytest.mark.parametrize(("ground_truth", "answer", "correct", "method"), ACCURACY_CASES)
def test_accuracy_golden(ground_truth: str, answer: str, correct: bool, method: str) -> None:
    result = score_response(answered(answer), ground_truth)
    assert result["accuracy"] == (1.0 if correct else 0.0)
    assert result["details"]["accuracy_method"] == method
    # A well-formed direct answer: completion always, tool credit never (no tool used).
    assert result["task_completion"] == 1.0
    assert result["tool_efficiency"] == 0.0
    assert result["score"] == pytest.approx(0.5 + (0.2 if correct else 0.0))


def test_any_of_several_ground_truths_counts() -> None:
    result = score_response(answered("new york city"), ["NYC", "New York City"])
    assert result["accuracy"] == 1.0


def test_choice_by_option_text_when_choices_given() -> None:
    choices = {"A": "red", "B": "blue"}
    assert score_response(answered("blue"), "B", choices=choices)["accuracy"] == 1.0
    assert score_response(answered("red"), "B", choices=choices)["accuracy"] == 0.0


def test_explicit_answer_type_overrides_inference() -> None:
    # "A" would be read as a choice letter; as text it must match literally.
    assert score_response(answered("(A)"), "A", answer_type="text")["accuracy"] == 0.0
    assert score_response(answered("(A)"), "A")["accuracy"] == 1.0


def test_numeric_tolerance_is_configurable() -> None:
    loose = RewardConfig(integer_exact=False, numeric_rel_tol=1e-2)
    assert score_response(answered("100.5"), "100", config=loose)["accuracy"] == 1.0
    assert score_response(answered("100.5"), "100")["accuracy"] == 0.0
    strict = RewardConfig(numeric_rel_tol=1e-4)
    assert score_response(answered("3.1416"), "3.14", config=strict)["accuracy"] == 0.0


def test_no_answer_scores_nothing_for_accuracy() -> None:
    result = evaluate_accuracy(None, ["4"], DEFAULT)
    assert (result.correct, result.method) == (False, "no_answer")
