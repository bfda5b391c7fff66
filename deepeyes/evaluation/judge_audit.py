"""Audit the LLM judge against human verdicts before trusting it with free-text answers.

    python -m deepeyes.evaluation.judge_audit --labels data/judge_audit/labels.jsonl \\
        --judge_api_base http://127.0.0.1:8001/v1 --judge_model judge

A labelled set is JSONL, one object per line: ``question``, ``reference`` (the gold
answer), ``answer`` (a candidate answer), ``human`` (``true``: a person judged it right),
optional ``id``, ``answer_type`` (``auto`` by default, as the reward reads it) and ``note``.
Each row is graded three ways, each compared with the human verdict:

* ``judge`` — the configured judge (any OpenAI-compatible server, through
  :class:`deepeyes.rewards.judge.LLMJudge`, the client the reward uses) on every row;
* ``rules`` — the reward's rule matcher alone (no judge);
* ``rules+judge`` — what the reward does: rules first, the judge only for free-text answers
  the rules rejected.

For each: agreement with its 95 % Wilson interval, Cohen's kappa, the confusion table
(human × rater), and the rows where they disagree. Rows on which the judge gave no verdict
(unreachable, nonsense) are counted and left out of the judge's figures. A small set of
hand-labelled rows ships in ``data/judge_audit/labels.jsonl``. Exit status: 0, 1 when the
judge gave no verdict at all, 2 for a bad labels file or flag.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepeyes.cli import QuietLoggingArguments, parse_cli
from deepeyes.paths import REPO_ROOT
from deepeyes.rewards import JudgeConfig, RewardConfig, load_reward_config
from deepeyes.rewards.accuracy import evaluate_accuracy
from deepeyes.rewards.judge import JudgeUnavailable, JudgeVerdict, LLMJudge
from deepeyes.utils.stats import cohen_kappa, format_interval, wilson_interval

logger = logging.getLogger(__name__)

DEFAULT_LABELS = REPO_ROOT / "data" / "judge_audit" / "labels.jsonl"
RATERS = ("judge", "rules", "rules+judge")


class LabelsError(ValueError):
    """The labelled set is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class LabelledAnswer:
    id: str
    question: str
    reference: str
    answer: str
    human: bool
    answer_type: str = "auto"


def load_labels(path: str | Path) -> list[LabelledAnswer]:
    """The rows of a labels JSONL; raises :class:`LabelsError` naming the line of any fault."""
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file not found: {path}")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelsError(f"{path} line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise LabelsError(f"{path} line {number}: expected an object")
        for key in ("question", "reference", "answer"):
            if not isinstance(record.get(key), str):
                raise LabelsError(f"{path} line {number}: '{key}' must be a string")
        if not isinstance(record.get("human"), bool):
            raise LabelsError(f"{path} line {number}: 'human' must be true or false, got {record.get('human')!r}")
        rows.append(
            LabelledAnswer(
                id=str(record.get("id", number)),
                question=record["question"],
                reference=record["reference"],
                answer=record["answer"],
                human=record["human"],
                answer_type=str(record.get("answer_type", "auto")),
            )
        )
    if not rows:
        raise LabelsError(f"{path}: no labelled rows")
    return rows


class _Replay(LLMJudge):
    """The judge's verdicts already fetched, replayed so that ``rules+judge`` asks nobody twice."""

    def __init__(self, config: JudgeConfig, verdicts: dict[tuple[str, str, str], JudgeVerdict | JudgeUnavailable]):
        super().__init__(config)
        self.verdicts = verdicts

    def judge(self, question: str | None, ground_truth: str, answer: str) -> JudgeVerdict:
        verdict = self.verdicts[(question or "", ground_truth, answer)]
        if isinstance(verdict, JudgeUnavailable):
            raise verdict
        return verdict


def _ask(judge: LLMJudge, row: LabelledAnswer) -> JudgeVerdict | JudgeUnavailable:
    try:
        return judge.judge(row.question, row.reference, row.answer)
    except JudgeUnavailable as exc:
        return exc


def rater_summary(human: list[bool], rater: list[bool], ids: list[str]) -> dict[str, Any]:
    """Agreement (Wilson interval), Cohen's kappa, the confusion counts and the disagreeing ids."""
    n = len(human)
    agree = sum(h == r for h, r in zip(human, rater, strict=True))
    interval = wilson_interval(agree, n)
    return {
        "n": n,
        "agreement": agree / n if n else None,
        "agreement_ci": list(interval) if interval else None,
        "kappa": cohen_kappa(human, rater),
        "confusion": {
            "human_correct": {"rater_correct": sum(h and r for h, r in zip(human, rater, strict=True)), "rater_incorrect": sum(h and not r for h, r in zip(human, rater, strict=True))},
            "human_incorrect": {"rater_correct": sum(r and not h for h, r in zip(human, rater, strict=True)), "rater_incorrect": sum(not h and not r for h, r in zip(human, rater, strict=True))},
        },
        "disagreements": [i for i, h, r in zip(ids, human, rater, strict=True) if h != r],
    }


def audit(rows: list[LabelledAnswer], judge_config: JudgeConfig, reward: RewardConfig | None = None, concurrency: int = 8) -> dict[str, Any]:
    """Grade every row by the judge, the rules, and rules-then-judge; compare each with the humans."""
    reward = reward or RewardConfig()
    client = LLMJudge(judge_config)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="judge-audit") as pool:
        answers = list(pool.map(lambda row: _ask(client, row), rows))
    verdicts = {(row.question, row.reference, row.answer): answer for row, answer in zip(rows, answers, strict=True)}
    replay = _Replay(judge_config, verdicts)

    def grade(row: LabelledAnswer, judge: LLMJudge | None) -> bool:
        return evaluate_accuracy(row.answer, [row.reference], reward, answer_type=row.answer_type, question=row.question, judge=judge).correct

    judged = [(row, answer) for row, answer in zip(rows, answers, strict=True) if isinstance(answer, JudgeVerdict)]
    missing = [(row.id, str(answer)) for row, answer in zip(rows, answers, strict=True) if isinstance(answer, JudgeUnavailable)]
    human = [row.human for row in rows]
    ids = [row.id for row in rows]
    return {
        "rows": len(rows),
        "judge": {"api_base": judge_config.api_base, "model": judge_config.model},
        "no_verdict": [{"id": row_id, "error": error} for row_id, error in missing],
        "raters": {
            "judge": rater_summary([row.human for row, _ in judged], [answer.correct for _, answer in judged], [row.id for row, _ in judged]),
            "rules": rater_summary(human, [grade(row, None) for row in rows], ids),
            "rules+judge": rater_summary(human, [grade(row, replay) for row in rows], ids),
        },
    }


def format_audit(result: dict[str, Any], labels: str | Path) -> str:
    """The printed audit: one line per rater, the confusion tables, disagreements and rows without a verdict."""
    judge = result["judge"]
    lines = [
        f"Judge audit: {result['rows']} labelled answers ({labels}); judge {judge['model']!r} at {judge['api_base']}",
        "",
        f"{'rater':<13}{'n':>4}{'agreement':>11}  {'95% CI':<15}{'kappa':>7}",
        "-" * 52,
    ]
    for name, block in result["raters"].items():
        agreement = "–" if block["agreement"] is None else f"{100 * block['agreement']:.1f}%"
        kappa = "–" if block["kappa"] is None else f"{block['kappa']:.3f}"
        lines.append(f"{name:<13}{block['n']:>4}{agreement:>11}  {format_interval(block['agreement_ci']):<15}{kappa:>7}")
    lines.append("")
    lines.append("Confusion (rows: human verdict; columns: rater's verdict):")
    for name, block in result["raters"].items():
        confusion = block["confusion"]
        lines.append(f"  {name:<13}{'correct':>9}{'incorrect':>11}")
        for human in ("human_correct", "human_incorrect"):
            cells = confusion[human]
            lines.append(f"  {human.replace('_', ' '):<13}{cells['rater_correct']:>9}{cells['rater_incorrect']:>11}")
    lines.append("")
    for name, block in result["raters"].items():
        if block["disagreements"]:
            lines.append(f"{name} disagrees with the humans on: {', '.join(block['disagreements'])}")
    if result["no_verdict"]:
        lines.append(f"judge gave no verdict on {len(result['no_verdict'])} row(s): " + "; ".join(f"{r['id']} ({r['error']})" for r in result["no_verdict"][:5]))
    lines.append("kappa: Cohen's, chance-corrected agreement with the human verdicts (1 perfect, 0 chance level).")
    return "\n".join(lines)


@dataclass(frozen=True)
class JudgeAuditArguments:
    labels: str = field(default=str(DEFAULT_LABELS), metadata={"help": "labelled answers, JSONL: question, reference, answer, human (true/false)"})
    judge_api_base: str = field(default="http://127.0.0.1:8000/v1", metadata={"help": "OpenAI-compatible endpoint of the judge"})
    judge_model: str = field(default="judge", metadata={"help": "model name requested from --judge_api_base"})
    timeout_s: float = field(default=30.0, metadata={"help": "seconds per judge request"})
    max_retries: int = field(default=1, metadata={"help": "retries of a failed judge request"})
    concurrency: int = field(default=8, metadata={"help": "judge requests in flight"})
    reward_config: str | None = field(default=None, metadata={"help": "RewardConfig YAML for the rule matcher (default: built-in)"})
    output: str | None = field(default=None, metadata={"help": "also write the audit as JSON to this file"})


def main(argv: Sequence[str] | None = None) -> int:
    args, logging_args = parse_cli(
        [JudgeAuditArguments, QuietLoggingArguments],
        argv,
        prog="python -m deepeyes.evaluation.judge_audit",
        description=(
            "Run the judge, the reward's rules, and rules-then-judge on a labelled set of answers and report each one's "
            "agreement with the human verdicts (95% interval), Cohen's kappa and confusion table."
        ),
    )
    logging_args.configure()
    try:
        rows = load_labels(args.labels)
        reward = load_reward_config(args.reward_config)
    except (LabelsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = JudgeConfig(enabled=True, api_base=args.judge_api_base, model=args.judge_model, timeout_s=args.timeout_s, max_retries=args.max_retries)
    result = audit(rows, config, reward, args.concurrency)
    print(format_audit(result, args.labels))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {args.output}")
    if result["raters"]["judge"]["n"] == 0:
        print("error: the judge gave no verdict on any row (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
