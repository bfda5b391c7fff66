"""Result accuracy: is the extracted answer right? Rules first, then (optionally) a judge.

The rules decide structured answers (letters, numbers, maths) on their own; the judge is
only consulted for free-text ground truths the rules did not accept, and its absence or
failure never raises — the result records that the rules' verdict was used instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepeyes.rewards import matching
from deepeyes.rewards.config import RewardConfig
from deepeyes.rewards.judge import JudgeUnavailable, LLMJudge


@dataclass
class AccuracyResult:
    correct: bool
    answer_type: str
    #: no_answer | too_long | exact | choice | numeric | math | text | judge
    method: str
    judge_used: bool = False
    judge_fallback: bool = False
    judge_error: str | None = None

    @property
    def score(self) -> float:
        return 1.0 if self.correct else 0.0


def answer_length_cap(ground_truths: list[str], config: RewardConfig) -> int:
    """Longest answer that is still graded: a fixed floor, or a multiple of the longest ground truth."""
    longest = max((len(g) for g in ground_truths), default=0)
    return max(config.answer_max_chars, int(config.answer_max_gt_ratio * longest))


def _choice_ground_truth(ground_truth: str, choices: dict[str, str] | None) -> str | None:
    letter = matching.choice_letter(ground_truth)
    if letter or not choices:
        return letter
    wanted = matching.normalize_text(ground_truth)
    found = [k.upper() for k, text in choices.items() if matching.normalize_text(text) == wanted]
    return found[0] if len(found) == 1 else None


def _number_rule(answer: str, ground_truth: str, config: RewardConfig) -> tuple[bool, str]:
    expected = matching.parse_pure_number(ground_truth)
    if expected is None:
        expected = matching.extract_single_number(ground_truth)
    given = matching.extract_single_number(answer)
    if expected is None or given is None:
        # "1/2" or "\frac{1}{2}" against 0.5: not one plain number, but maths can say.
        return matching.maths_match(answer, ground_truth, config.math_timeout_s), "math"
    exact = config.integer_exact and matching.is_integer_literal(ground_truth)
    ok = matching.numbers_match(
        given, expected, exact=exact, rel_tol=config.numeric_rel_tol, abs_tol=config.numeric_abs_tol
    )
    return ok, "numeric"


def rules_match(
    answer: str, ground_truth: str, answer_type: str, config: RewardConfig, choices: dict[str, str] | None = None
) -> tuple[bool, str]:
    """The rules' verdict for one ground truth of a known type, and the rule that decided.

    Option letters never go through text equality: its article rule would read the "A" of
    the hedge "A, B" as an article and leave "b" (the choice rule refuses every hedge).
    """
    if answer_type != "choice" and matching.texts_match(answer, ground_truth):
        return True, "exact"
    if answer_type == "choice":
        expected = _choice_ground_truth(ground_truth, choices)
        return expected is not None and matching.extract_choice(answer, choices) == expected, "choice"
    if answer_type == "number":
        return _number_rule(answer, ground_truth, config)
    if answer_type == "math":
        return matching.maths_match(answer, ground_truth, config.math_timeout_s), "math"
    return False, "text"


def evaluate_accuracy(
    answer: str | None,
    ground_truths: list[str],
    config: RewardConfig,
    *,
    answer_type: str = "auto",
    choices: dict[str, str] | None = None,
    question: str | None = None,
    judge: LLMJudge | None = None,
) -> AccuracyResult:
    """Grade ``answer`` against any of ``ground_truths`` (a list: datasets may accept several)."""
    types = [matching.infer_answer_type(g) if answer_type == "auto" else answer_type for g in ground_truths]
    reported_type = types[0] if types else "text"
    if answer is None or not answer.strip():
        return AccuracyResult(False, reported_type, "no_answer")
    if len(answer) > answer_length_cap(ground_truths, config):
        return AccuracyResult(False, reported_type, "too_long")
    method = "text"
    for ground_truth, kind in zip(ground_truths, types, strict=True):
        ok, method = rules_match(answer, ground_truth, kind, config, choices)
        if ok:
            return AccuracyResult(True, kind, method)
    text_truths = [g for g, kind in zip(ground_truths, types, strict=True) if kind == "text"]
    if judge is None or not text_truths:
        return AccuracyResult(False, reported_type, method)
    reference = text_truths[0] if len(text_truths) == 1 else "any of: " + "; ".join(text_truths)
    try:
        verdict = judge.judge(question, reference, answer)
    except JudgeUnavailable as exc:
        return AccuracyResult(False, "text", method, judge_used=True, judge_fallback=True, judge_error=str(exc))
    return AccuracyResult(verdict.correct, "text", "judge", judge_used=True)
