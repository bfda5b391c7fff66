"""``python -m deepeyes.evaluation`` — the CLI behind ``evaluation/run_eval.sh``; its flags are the fields of :class:`EvalConfig`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from deepeyes.cli import QuietLoggingArguments, parse_cli
from deepeyes.evaluation.compare import summary_line
from deepeyes.evaluation.config import EvalConfig
from deepeyes.evaluation.datasets import DatasetError
from deepeyes.evaluation.runner import (
    REPORT_HTML,
    REPORT_PDF,
    RESULTS_FILE,
    TRAJECTORY_DIR,
    ResumeMismatchError,
    evaluate,
)
from deepeyes.utils.stats import format_interval

DESCRIPTION = (
    "Evaluate a model on benchmark TSVs (VLMEvalKit conventions) with the DeepEyes agent loop and reward, "
    "resuming from the trajectories already in --output_dir. Writes eval_results.json, "
    "trajectories/<dataset>.jsonl, eval_report.html and eval_report.pdf. Relative paths are taken from the "
    "current directory."
)
#: Earlier spellings still accepted (not shown in --help).
ALIASES = {"--output": "output_dir", "--no_progress": "no:show_progress"}


def parse_args(argv: Sequence[str] | None = None) -> tuple[EvalConfig, QuietLoggingArguments]:
    """The run's :class:`EvalConfig` and logging settings; exits 2 on a bad flag or value."""
    return parse_cli(  # type: ignore[return-value]
        [EvalConfig, QuietLoggingArguments], argv, prog="python -m deepeyes.evaluation", description=DESCRIPTION, aliases=ALIASES
    )


def baseline_summary(block: dict) -> str:
    """``always first option 25.0% (n=4), …`` for one dataset's baselines."""
    parts = []
    for name, baseline in block.get("baselines", {}).items():
        if baseline.get("accuracy") is None:
            continue
        interval = f" {format_interval(baseline['accuracy_ci'])}" if baseline.get("accuracy_ci") else ""
        parts.append(f"{name.replace('_', ' ')} {100 * baseline['accuracy']:.1f}%{interval} (n={baseline['n']})")
    return ", ".join(parts) or "none applicable"


def main(argv: Sequence[str] | None = None) -> int:
    config, logging_args = parse_args(argv)
    logging_args.configure()
    try:
        results = evaluate(config)
    except (DatasetError, ResumeMismatchError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(config.output_dir)
    print(summary_line("run", results))
    for name, block in results["datasets"].items():
        print(f"  {summary_line(name, {'overall': block['overall']})}")
        print(f"    baselines: {baseline_summary(block)}")
    repeats = results.get("repeats")
    if repeats:
        acc = repeats["accuracy"]
        print(
            f"repeats:      {repeats['k']} runs, seeds {repeats['seeds']}: accuracy mean {100 * acc['mean']:.1f}%, "
            f"sd {100 * acc['std']:.1f} points, range {100 * acc['min']:.1f}-{100 * acc['max']:.1f}%"
        )
    for flag in results.get("flags", []):
        print(f"FLAG: {flag}")
    print(f"results:      {out / RESULTS_FILE}")
    print(f"trajectories: {out / TRAJECTORY_DIR}/<dataset>.jsonl")
    if config.report:
        print(f"report:       {out / REPORT_PDF}  {out / REPORT_HTML}")
    errors = results["overall"].get("errors", 0)
    if errors:
        print(f"error: {errors} sample(s) failed (see the log); run again to retry them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
