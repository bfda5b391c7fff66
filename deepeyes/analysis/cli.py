"""Command line of the behaviour analysis (``python -m deepeyes.analysis``, ``behavior_analysis/analyze.py``).

Built with :func:`deepeyes.cli.parse_cli`, as every DeepEyes CLI: the flags and their
``--help`` live on :class:`AnalysisArguments`, and a malformed ``--runs`` stops with
argparse's usage message and exit status 2 before any file is read.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.analyze import SUMMARY_FILE, analyze
from deepeyes.analysis.report import REPORT_HTML, REPORT_PDF, alarm_lines
from deepeyes.analysis.sources import RunNotFoundError, SchemaVersionError
from deepeyes.cli import LoggingArguments, parse_cli

DEFAULTS = AnalysisConfig()
DESCRIPTION = (
    "Behaviour analysis of DeepEyes trajectories: tool use per category, what code does, decision paths, "
    "complexity, behaviour over RL steps with a collapse alarm, tool-choice accuracy, runs side by side and a "
    "trajectory browser. Writes behavior_report.html/.pdf, figures/*.png and behavior_summary.json."
)


@dataclass(frozen=True)
class AnalysisArguments:
    runs: list[str] = field(
        metadata={
            "help": "named runs NAME=PATH: an evaluation output folder, an RL output folder (trajectories.jsonl + "
            "metrics.jsonl) or a trajectory JSONL file; the first is the baseline for deltas",
            "metavar": "NAME=PATH",
        }
    )
    out: str = field(metadata={"help": "output folder (created)"})
    collapse_fraction: float = field(
        default=DEFAULTS.collapse_fraction, metadata={"help": "collapse alarm: tool calls per trajectory below this fraction of its first step ..."}
    )
    collapse_patience: int = field(default=DEFAULTS.collapse_patience, metadata={"help": "... for this many consecutive RL steps"})
    examples_per_group: int = field(
        default=DEFAULTS.examples_per_group, metadata={"help": "trajectories kept for the browser per category and kind of example"}
    )
    top_paths: int = field(default=DEFAULTS.top_paths, metadata={"help": "decision paths listed per run"})
    validate: bool = field(
        default=False,
        metadata={"help": "check every record against trajectory.schema.json (slower); otherwise only the fields read are checked"},
    )
    progress: bool = field(default=True, metadata={"help": "show progress bars"})

    def __post_init__(self) -> None:
        names = []
        for spec in self.runs:
            name, separator, path = spec.partition("=")
            if not separator or not name or not path:
                raise ValueError(f"--runs: expected NAME=PATH, got {spec!r}")
            names.append(name)
        if len(set(names)) != len(names):
            raise ValueError(f"--runs: run names must be unique, got {', '.join(names)}")

    def named_runs(self) -> dict[str, str]:
        """Run name → path, in the order given (the first is the baseline)."""
        return dict(spec.partition("=")[::2] for spec in self.runs)

    def analysis_config(self) -> AnalysisConfig:
        return AnalysisConfig(
            collapse_fraction=self.collapse_fraction,
            collapse_patience=self.collapse_patience,
            examples_per_group=self.examples_per_group,
            top_paths=self.top_paths,
            full_validation=self.validate,
        )


def main(argv: Sequence[str] | None = None, prog: str = "python -m deepeyes.analysis") -> int:
    args, logging_args = parse_cli([AnalysisArguments, LoggingArguments], argv, prog=prog, description=DESCRIPTION)
    logging_args.configure()
    out = Path(args.out)
    try:
        summary = analyze(args.named_runs(), out, args.analysis_config(), show_progress=args.progress)
    except (RunNotFoundError, SchemaVersionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, run in summary["runs"].items():
        read = run["read"]
        note = " (empty)" if run["empty"] else ""
        print(f"{name}: {read['trajectories']} trajectories, {read['malformed_lines']} malformed lines skipped{note}")
    for line in alarm_lines(summary):
        print(f"ALARM {line}")
    print(f"behaviour report: {out / REPORT_HTML}  {out / REPORT_PDF}  {out / SUMMARY_FILE}")
    return 0
