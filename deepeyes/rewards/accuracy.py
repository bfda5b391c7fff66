"""Result accuracy: is the extracted answer right? Rules first, then (optionally) a judge.

The rules decide structured answers (letters, numbers, maths) on their own; the judge is
only consulted for free-text ground truths the rules did not accept, and its absence or
failure never raises — the result records that the rules' verdict was used instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepeyes.rewards import choices as choice_rules
from deepeyes.rewards import maths, numbers
from deepeyes.rewards.config import RewardConfig
from deepeyes.rewards.judge import JudgeUnavailable, LLMJudge
from deepeyes.rewards.matching import infer_answer_type
from deepeyes.rewards.normalize import texts_match, yes_no


@dataclass
class AccuracyResult:
    correct: bool
    answer_type: str
    #: no_answer | too_long | exact | choice | numeric | math | yes_no | text | judge
    method: str
    judge_used: bool = False
    judge_fallback: bool = False
    judge_error: str | None = None
    #: Why a rule could not reach a verdict (a formula too large, a maths check out of time).
    reason: str | None = None

    @property
    def score(self) -> float:
        return 1.0 if self.correct else 0.0


@dataclass(frozen=True)
class RuleVerdict:
    correct: bool
    method: str
    reason: str | None = None


def answer_length_cap(ground_truths: list[str], config: RewardConfig) -> int:
    """Longest answer that is still graded: a fixed floor, or a multiple of the longest ground truth."""
    longest = max((len(g) for g in ground_truths), default=0)
    return max(config.answer_max_chars, int(config.answer_max_gt_ratio * longest))


def _choice_ground_truth(ground_truth: str, choices: dict[str, str] | None) -> str | None:
    letter = choice_rules.choice_letter(ground_truth)
    if letter or not choices:
        return letter
    return choice_rules.option_by_text(ground_truth, choices)


def _maths_rule(answer: str, ground_truth: str, config: RewardConfig) -> RuleVerdict:
    verdict = maths.maths_match(answer, ground_truth, config.math_timeout_s)
    return RuleVerdict(verdict.equal, "math", verdict.reason)


def _number_rule(answer: str, ground_truth: str, config: RewardConfig) -> RuleVerdict:
    expected = numbers.parse_number(ground_truth)
    given = numbers.parse_number(answer)
    if expected is None or given is None:
        # "1/2" or "\frac{1}{2}" against 0.5: not one plain number, but maths can say.
        return _maths_rule(answer, ground_truth, config)
    exact = config.integer_exact and numbers.is_integer_literal(ground_truth)
    ok = numbers.numbers_match(given, expected, exact=exact, rel_tol=config.numeric_rel_tol, abs_tol=config.numeric_abs_tol)
    return RuleVerdict(ok, "numeric")


def rules_match(
    answer: str, ground_truth: str, answer_type: str, config: RewardConfig, choices: dict[str, str] | None = None
) -> RuleVerdict:
    """The rules' verdict for one ground truth of a known type, and the rule that decided.

    Option letters never go through text equality: the choice rule alone knows hedges.
    """
    if answer_type == "choice":
        expected = _choice_ground_truth(ground_truth, choices)
        return RuleVerdict(expected is not None and choice_rules.extract_choice(answer, choices) == expected, "choice")
    if texts_match(answer, ground_truth, formula=answer_type == "math"):
        return RuleVerdict(True, "exact")
    if answer_type == "number":
        return _number_rule(answer, ground_truth, config)
    if answer_type == "math":
        return _maths_rule(answer, ground_truth, config)
    expected_polarity = yes_no(ground_truth)
    if expected_polarity is not None:
        return RuleVerdict(yes_no(answer) == expected_polarity, "yes_no")
    return RuleVerdict(False, "text")


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
    types = [infer_answer_type(g, choices) if answer_type == "auto" else answer_type for g in ground_truths]
    reported_type = types[0] if types else "text"
    if answer is None or not answer.strip():
        return AccuracyResult(False, reported_type, "no_answer")
    if len(answer) > answer_length_cap(ground_truths, config):
        return AccuracyResult(False, reported_type, "too_long")
    verdict = RuleVerdict(False, "text")
    reason = None
    for ground_truth, kind in zip(ground_truths, types, strict=True):
        verdict = rules_match(answer, ground_truth, kind, config, choices)
        if verdict.correct:
            return AccuracyResult(True, kind, verdict.method)
        reason = verdict.reason or reason
    text_truths = [g for g, kind in zip(ground_truths, types, strict=True) if kind == "text"]
    if judge is None or not text_truths:
        return AccuracyResult(False, reported_type, verdict.method, reason=reason)
    reference = text_truths[0] if len(text_truths) == 1 else "any of: " + "; ".join(text_truths)
    try:
        judged = judge.judge(question, reference, answer)
    except JudgeUnavailable as exc:
        return AccuracyResult(
            False, "text", verdict.method, judge_used=True, judge_fallback=True, judge_error=str(exc), reason=reason
        )
    return AccuracyResult(judged.correct, "text", "judge", judge_used=True)
