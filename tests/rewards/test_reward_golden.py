"""Golden cases: known answers and outputs with the reward each must get."""

from __future__ import annotations

import time

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
    ("\\boxed{4}", "4", True, "exact"),
    ("x+1", "x+2", False, "math"),
    ("\\frac{1}{3}", "0.33", False, "math"),
    # multiple choice letters
    ("B", "B", True, "choice"),
    ("B", "(B)", True, "choice"),
    ("B", "B. red", True, "choice"),
    ("B", "B) red", True, "choice"),
    ("B", "(B) red", True, "choice"),
    ("B", "The answer is B", True, "choice"),
    ("B", "Answer: (B)", True, "choice"),
    ("B", "Option B", True, "choice"),
    ("B", "b", True, "choice"),
    ("(C)", "C", True, "choice"),
    ("B", "C", False, "choice"),
    ("B", "A or B", False, "choice"),
    ("B", "B and C", False, "choice"),
    # a boxed / framed / \text-wrapped letter is the letter (issue 12)
    ("B", "\\boxed{B}", True, "choice"),
    ("B", "$\\boxed{B}$", True, "choice"),
    ("B", "\\fbox{B}", True, "choice"),
    ("B", "\\text{B}", True, "choice"),
    ("B", "\\textbf{(B)}", True, "choice"),
    ("B", "\\boxed{\\text{B}}", True, "choice"),
    ("B", "\\(\\boxed{B}\\)", True, "choice"),
    ("B", "\\boxed{C}", False, "choice"),
    # any hedge naming several options never scores, whatever the separator (issue 12)
    ("B", "A, B", False, "choice"),
    ("A", "A, B", False, "choice"),
    ("B", "A,B", False, "choice"),
    ("B", "A/B", False, "choice"),
    ("B", "(A) (B)", False, "choice"),
    ("B", "A; B; C", False, "choice"),
    ("B", "\\boxed{A, B}", False, "choice"),
    ("B", "B or C", False, "choice"),
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
    # a unit after a correct number, with exponents, superscripts or slashes (issue 12)
    ("9", "9 m^2", True, "numeric"),
    ("9", "9 m^{2}", True, "numeric"),
    ("9", "9\\,\\text{m}^2", True, "numeric"),
    ("9", "$9\\ \\mathrm{m^2}$", True, "numeric"),
    ("9", "9 cm**2", True, "numeric"),
    ("9", "9 m²", True, "numeric"),
    ("9", "9 cm³", True, "numeric"),
    ("9", "9 m/s^2", True, "numeric"),
    ("9", "9 m s^-1", True, "numeric"),
    ("9", "9 kg·m/s²", True, "numeric"),
    ("25", "25 km/h", True, "numeric"),
    ("9", "\\boxed{9 m^2}", True, "numeric"),
    ("9", "8 m^2", False, "numeric"),
    ("9", "9 m^2 or 10 m^2", False, "math"),
    # an exponent or digits inside a word are not the answer's number (found by a new-user trial)
    ("2", "m^2", False, "math"),
    ("3", "cm^3", False, "math"),
    ("2", "x**2", False, "math"),
    ("3", "e^-3", False, "math"),
    ("2", "CO2", False, "math"),
    ("10", "10^3", False, "math"),
    ("1000", "10^3", True, "math"),
    ("9", "about 9 m^2", True, "numeric"),
    ("9", "9 m^2 (approx)", True, "numeric"),
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
    # A well-formed direct answer is paid only when right (seed preset, direct_answer_credit 1).
    assert result["task_completion"] == (1.0 if correct else 0.0)
    assert result["tool_efficiency"] == (1.0 if correct else 0.0)
    assert result["score"] == pytest.approx(1.0 if correct else 0.0)


COLOURS = {"A": "black", "B": "white", "C": "red", "D": "blue"}

# Issue 25, one kind per block: (ground truth, answer, correct?, deciding rule, extra request fields).
ISSUE_25_CASES = [
    # 1. signs, operators and comparison symbols are meaning
    ("-5", "5", False, "numeric", {}),
    ("5", "-5", False, "numeric", {}),
    ("x^2 - 1", "x^2 + 1", False, "math", {}),
    ("a - b", "a + b", False, "math", {}),
    ("2/3", "2*3", False, "math", {}),
    ("3 > 2", "3 < 2", False, "math", {}),
    ("-5", "−5", True, "exact", {}),  # the Unicode minus sign is a minus
    ("a - b", "a-b", True, "exact", {}),
    ("x^2 - 1", "-1 + x^2", True, "math", {}),
    ("3 > 2", "2 < 3", True, "math", {}),
    ("5", "not 5", False, "math", {}),
    ("5", "5+", False, "math", {}),  # "5 or more"
    ("5", "5!", False, "math", {}),
    # 2. tiny values and exact rationals (math-verify's absolute tolerance)
    ("\\frac{1}{2^{99}}", "\\frac{1}{2^{98}}", False, "math", {}),
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}", False, "math", {}),
    ("\\frac{1}{2^{99}}", "2^{-99}", True, "math", {}),
    ("0", "10^{-20}", False, "math", {}),
    ("1e-9", "2e-9", False, "numeric", {}),  # relative tolerance: no two tiny numbers are equal
    ("\\frac{1}{3}", "0.333333", True, "math", {}),
    ("320000", "3.2 \\times 10^{5}", True, "numeric", {}),
    ("3.2", "3.2 \\times 10^{5}", False, "numeric", {}),
    # 3. option letters through decoration
    ("B", "**B**", True, "choice", {"choices": COLOURS}),
    ("B", "The correct answer is **B**", True, "choice", {"choices": COLOURS}),
    ("B", "**B. white**", True, "choice", {"choices": COLOURS}),
    ("B", "<u>B</u>", True, "choice", {"choices": COLOURS}),
    ("B", "[B]", True, "choice", {"choices": COLOURS}),
    ("B", "I think it's B", True, "choice", {"choices": COLOURS}),
    ("B", "**B. black**", False, "choice", {"choices": COLOURS}),  # letter and text disagree
    ("B", "**C**", False, "choice", {"choices": COLOURS}),
    ("B", "**A** or **B**", False, "choice", {"choices": COLOURS}),
    # 5. one-letter articles; an option letter in LaTeX against the option's text
    ("A", "A", True, "exact", {"answer_type": "text"}),
    ("a", "a", True, "exact", {}),
    ("a", "b", False, "text", {}),
    ("white", "\\boxed{\\text{B}}", True, "choice", {"choices": COLOURS}),
    ("white", "\\boxed{\\text{A}}", False, "choice", {"choices": COLOURS}),
    # 6. CJK punctuation and full-width forms
    ("北京", "北京。", True, "exact", {}),
    ("北京", "上海。", False, "text", {}),
    ("B", "（B）", True, "choice", {}),
    ("B", "Ｂ", True, "choice", {}),
    ("B", "（C）", False, "choice", {}),
    ("5", "５个", True, "numeric", {}),
    # yes/no and number words
    ("Yes", "There is a dog on the mat, so yes.", True, "yes_no", {}),
    ("Yes", "Yes and no", False, "yes_no", {}),
    ("3", "three apples", True, "numeric", {}),
    ("three", "3", True, "numeric", {}),
    ("three", "3.02", False, "numeric", {}),  # a number word is an integer: compared exactly
]


@pytest.mark.parametrize(("ground_truth", "answer", "correct", "method", "fields"), ISSUE_25_CASES)
def test_issue_25_golden(ground_truth: str, answer: str, correct: bool, method: str, fields: dict) -> None:
    result = score_response(answered(answer), ground_truth, **fields)
    assert (result["accuracy"], result["details"]["accuracy_method"]) == ((1.0 if correct else 0.0), method)
    assert result["details"]["accuracy_reason"] is None


@pytest.mark.parametrize("answer", ["9^{9^{9}}", "2^{2^{2^{2^{2^{2}}}}}", "(10^{6})!", "10^{10^{10}}", "9**9**9"])
def test_astronomical_answers_are_refused_at_once_with_a_reason(answer: str) -> None:
    start = time.perf_counter()
    result = score_response(answered(answer), "1")
    assert time.perf_counter() - start < 2.0
    assert (result["accuracy"], result["details"]["accuracy_method"]) == (0.0, "math")
    assert "too large" in result["details"]["accuracy_reason"]


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


# ---- presets: each formula's values (docs/rewards.md gives the same worked examples) ------

def with_code(stdout: str) -> str:
    return wire.think("compute") + wire.code_action("print(6*7)") + wire.code_observation(stdout, "", 0)


def with_search() -> str:
    return wire.think("look it up") + wire.text_search_action("Zorvan founding year") + wire.tool_response("1. [Zorvan](l)\n1642")


@pytest.mark.parametrize(
    ("response", "truth", "expected"),
    [
        (answered("42"), "42", 1.0),  # correct, direct: 0.5 + 0.3 + 0.2
        (with_code("42") + answered("42"), "42", 1.0),  # correct with a useful call
        (answered("41"), "42", 0.0),  # well-formed but wrong earns nothing
        (with_code("41") + answered("41"), "42", 0.0),  # tool use on a wrong answer earns nothing
        ("<think>x</think><answer>42</answer> trailing", "42", 0.5 * 0.5 + 0.3 + 0.2),  # one format fault
        ("<think>x</think><answer>41</answer> trailing", "42", 0.0),
        (with_code("42") + "<think>x</think><answer>42</answer> trailing", "42", 0.75),  # docs' worked example
    ],
)
def test_seed_preset_pays_for_solving(response: str, truth: str, expected: float) -> None:
    assert score_response(response, truth)["score"] == pytest.approx(expected)


def test_seed_wrong_answer_never_outscores_a_right_one() -> None:
    # The fault the issue measured: wrong-but-formatted scored 0.5 and right 0.7.
    wrong = score_response(answered("41"), "42")["score"]
    right = score_response(answered("42"), "42")["score"]
    assert (wrong, right) == (0.0, 1.0)


V2 = RewardConfig(preset="deepeyes_v2")


@pytest.mark.parametrize(
    ("response", "truth", "expected"),
    [
        (answered("42"), "42", 0.8 + 0.2),
        (answered("41"), "42", 0.2),  # format alone
        (with_search() + answered("1642"), "1642", 0.8 + 0.2 - 0.1),  # the search penalty
        (with_search() + answered("1643"), "1642", 0.2 - 0.1),
        (with_code("42") + answered("42"), "42", 1.0),  # code is not search: no penalty
        ("<think>x</think><answer>42</answer> trailing", "42", 0.8 + 0.2 * 0.5),
    ],
)
def test_deepeyes_v2_preset(response: str, truth: str, expected: float) -> None:
    result = score_response(response, truth, config=V2)
    assert result["score"] == pytest.approx(expected)
    assert result["details"]["preset"] == "deepeyes_v2"


V1 = RewardConfig(preset="deepeyes_v1")


@pytest.mark.parametrize(
    ("response", "truth", "expected"),
    [
        (answered("42"), "42", 0.8),  # right, no tool: no bonus
        (with_code("42") + answered("42"), "42", 0.8 + 1.2),  # right with a tool: the bonus
        (with_code("41") + answered("41"), "42", 0.0),  # tool but wrong: no bonus
        ("<think>x</think><answer>41</answer> trailing", "42", -0.2),  # format fault costs 0.2
        ("<think>x</think><answer>42</answer> trailing", "42", 0.8 - 0.2),
    ],
)
def test_deepeyes_v1_preset(response: str, truth: str, expected: float) -> None:
    assert score_response(response, truth, config=V1)["score"] == pytest.approx(expected)


def test_preset_knobs_and_unknown_preset() -> None:
    assert score_response(with_search() + answered("1642"), "1642", config=RewardConfig(preset="deepeyes_v2", search_penalty=0.3))[
        "score"
    ] == pytest.approx(0.7)
    assert score_response(with_code("42") + answered("42"), "42", config=RewardConfig(preset="deepeyes_v1", tool_bonus=0.5))[
        "score"
    ] == pytest.approx(1.3)
    with pytest.raises(ValueError, match="preset"):
        RewardConfig(preset="mystery")


@pytest.mark.parametrize(
    ("data_source", "response", "truth", "expected"),
    [
        # The released reward routes DeepEyesV2's rows by data_source.
        ("search", with_search() + answered("1642"), "1642", 0.8 + 0.2 - 0.1),  # search rows pay the penalty
        ("perception", with_search() + answered("1642"), "1642", 0.8 + 0.2),  # perception rows do not
        ("reason", with_search() + answered("1642"), "1642", 0.8 + 0.2),
        ("vstar-test", "<think>x</think><answer>42</answer> trailing", "42", 1.0),  # validation: accuracy alone
        ("vstar-test", answered("41"), "42", 0.0),
        ("DeepEyesMini_Search", with_search() + answered("1642"), "1642", 0.8 + 0.2 - 0.1),  # other sources: as search
    ],
)
def test_deepeyes_v2_routes_by_data_source(data_source: str, response: str, truth: str, expected: float) -> None:
    assert score_response(response, truth, config=V2, data_source=data_source)["score"] == pytest.approx(expected)


def test_deepeyes_v2_data_source_reaches_every_route() -> None:
    from deepeyes.rewards.scoring import compute_score, score_trajectory
    from deepeyes.wire import trajectory_from_response

    trajectory = trajectory_from_response(with_search() + answered("1642"), "When was Zorvan founded?", "answer")
    trajectory.ground_truth, trajectory.data_source = "1642", "perception"
    assert score_trajectory(trajectory, config=V2)["score"] == pytest.approx(1.0)  # the trajectory's own source
    # verl's hook passes data_source beside the text
    assert compute_score("perception", with_search() + answered("1642"), "1642")["score"] == score_response(
        with_search() + answered("1642"), "1642", data_source="perception"
    )["score"]


def test_deepeyes_v1_tool_bonus_counts_the_zoom_tool() -> None:
    """DeepEyes v1's only tool is image_zoom_in_tool: using it must earn the bonus."""
    zoom = wire.think("zoom in") + wire.TOOL_CALL_OPEN + '\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [0, 0, 10, 10]}}\n' + wire.TOOL_CALL_CLOSE
    response = zoom + wire.tool_response("Zoomed in on the image.") + answered("42")
    assert score_response(response, "42", config=V1)["score"] == pytest.approx(0.8 + 1.2)
