"""Command line of the behaviour analysis (``python -m deepeyes.analysis``, ``behavior_analysis/analyze.py``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.analyze import SUMMARY_FILE, analyze
from deepeyes.analysis.report import REPORT_HTML, REPORT_PDF, alarm_lines
from deepeyes.analysis.sources import RunNotFoundError, SchemaVersionError

DEFAULTS = AnalysisConfig()


def _run_spec(text: str) -> tuple[str, str]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def build_parser(prog: str = "python -m deepeyes.analysis") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Behaviour analysis of DeepEyes trajectories: tool use per category, what code does, decision paths, "
            "complexity, behaviour over RL steps with a collapse alarm, tool-choice accuracy, runs side by side and a "
            "trajectory browser. Writes behavior_report.html/.pdf, figures/*.png and behavior_summary.json."
        ),
    )
    parser.add_argument(
        "--runs", nargs="+", type=_run_spec, required=True, metavar="NAME=PATH",
        help="named runs: an evaluation output folder, an RL output folder (trajectories.jsonl + metrics.jsonl) or a trajectory JSONL file; the first is the baseline for deltas",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--collapse_fraction", type=float, default=DEFAULTS.collapse_fraction, help="collapse alarm: tool-call rate below this fraction of its first step ... (default %(default)s)")
    parser.add_argument("--collapse_patience", type=int, default=DEFAULTS.collapse_patience, help="... for this many consecutive RL steps (default %(default)s)")
    parser.add_argument("--examples_per_group", type=int, default=DEFAULTS.examples_per_group, help="trajectories kept for the browser per category and kind of example (default %(default)s)")
    parser.add_argument("--top_paths", type=int, default=DEFAULTS.top_paths, help="decision paths listed per run (default %(default)s)")
    parser.add_argument("--validate", action="store_true", help="check every record against trajectory.schema.json (slower); otherwise only the fields read are checked")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--log_level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m deepeyes.analysis") -> int:
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    runs = dict(args.runs)
    if len(runs) != len(args.runs):
        print("error: run names must be unique", file=sys.stderr)
        return 2
    config = AnalysisConfig(
        collapse_fraction=args.collapse_fraction,
        collapse_patience=args.collapse_patience,
        examples_per_group=args.examples_per_group,
        top_paths=args.top_paths,
        full_validation=args.validate,
    )
    try:
        summary = analyze(runs, args.out, config, show_progress=not args.no_progress)
    except (RunNotFoundError, SchemaVersionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, run in summary["runs"].items():
        read = run["read"]
        note = " (empty)" if run["empty"] else ""
        print(f"{name}: {read['trajectories']} trajectories, {read['malformed_lines']} malformed lines skipped{note}")
    for line in alarm_lines(summary):
        print(f"ALARM {line}")
    print(f"behaviour report: {args.out / REPORT_HTML}  {args.out / REPORT_PDF}  {args.out / SUMMARY_FILE}")
    return 0
