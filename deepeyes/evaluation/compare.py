"""Compare evaluation runs side by side (e.g. base model vs SFT vs RL in the quick start).

    python -m deepeyes.evaluation.compare --runs base=outputs/eval_base sft=outputs/eval_sft

prints one row per run — accuracy, valid-action share (turns whose action parsed),
tool-call rate (samples with at least one tool call) — and the report paths.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepeyes.cli import parse_cli
from deepeyes.evaluation.runner import REPORT_HTML, REPORT_PDF, RESULTS_FILE

HEADERS = ("run", "samples", "accuracy", "valid actions", "tool-call rate")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir} (is it an OUTPUT_REPORT folder of a finished run?)")
    return json.loads(path.read_text(encoding="utf-8"))


def row(name: str, results: dict[str, Any]) -> tuple[str, ...]:
    overall = results["overall"]
    return (
        name,
        str(overall.get("n", 0)),
        _pct(overall.get("accuracy")),
        _pct(overall.get("valid_action_share")),
        _pct(overall.get("any_tool_call_rate")),
    )


def summary_line(name: str, results: dict[str, Any]) -> str:
    cells = row(name, results)
    return f"{cells[0]}: {cells[1]} samples, accuracy {cells[2]}, valid actions {cells[3]}, tool-call rate {cells[4]}"


def comparison_table(runs: dict[str, str | Path]) -> str:
    """The table over runs (name → OUTPUT_REPORT folder), followed by each run's report paths."""
    rows = [HEADERS, *(row(name, load_results(path)) for name, path in runs.items())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in enumerate(zip(r, widths, strict=True))) for r in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.extend(f"{name}: {Path(path) / REPORT_PDF}  {Path(path) / REPORT_HTML}" for name, path in runs.items())
    return "\n".join(lines)


@dataclass(frozen=True)
class CompareArguments:
    runs: list[str] = field(metadata={"help": "NAME=PATH pairs: a run's name and its OUTPUT_REPORT folder"})

    def __post_init__(self) -> None:
        for spec in self.runs:
            name, separator, path = spec.partition("=")
            if not separator or not name or not path:
                raise ValueError(f"--runs: expected NAME=PATH, got {spec!r}")

    def run_dirs(self) -> dict[str, str]:
        """Run name → OUTPUT_REPORT folder, in the order given."""
        return dict(spec.partition("=")[::2] for spec in self.runs)


def main(argv: Sequence[str] | None = None) -> int:
    (args,) = parse_cli(
        [CompareArguments],
        argv,
        prog="python -m deepeyes.evaluation.compare",
        description="Print one table comparing evaluation runs (accuracy, valid-action share, tool-call rate) and their report paths.",
    )
    try:
        print(comparison_table(args.run_dirs()))
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
