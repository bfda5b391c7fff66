"""Compare evaluation runs side by side (e.g. base model vs SFT vs RL in the quick start).

    python -m deepeyes.evaluation.compare --runs base=outputs/eval_base sft=outputs/eval_sft

prints one row per run — samples ``n``, accuracy with its 95 % interval, circular accuracy
(when the run asked for it), valid-action share (turns whose action parsed), tool-call rate
(samples with at least one tool call) — then each run against the one before it (``sft``
vs ``base``, ``rl`` vs ``sft``) on the samples both evaluated, paired by dataset and row
index: the accuracy difference with a 95 % paired-bootstrap interval, the discordant
samples and the exact McNemar p-value, and "no detectable difference" when the interval
covers 0. The runs' flags (data guards, trivial baselines that reach the model) and report
paths follow.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepeyes.cli import parse_cli
from deepeyes.evaluation.runner import REPORT_HTML, REPORT_PDF, RESULTS_FILE
from deepeyes.utils.stats import (
    PairedComparison,
    format_interval,
    mean_interval,
    paired_comparison,
)

HEADERS = ("run", "n", "accuracy", "95% CI", "circular", "valid actions", "tool-call rate")
PAIRED_HEADERS = ("B vs A", "n", "A", "B", "B − A", "95% CI", "A only", "B only", "McNemar p", "verdict")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir} (is it an OUTPUT_REPORT folder of a finished run?)")
    return json.loads(path.read_text(encoding="utf-8"))


def _accuracy_ci(block: dict[str, Any]) -> list[float] | None:
    """The block's interval; for results written before intervals existed, Wilson from ``n`` and the accuracy."""
    if "accuracy_ci" in block or not block.get("n") or block.get("accuracy") is None:
        return block.get("accuracy_ci")
    n = int(block["n"])
    correct = round(block["accuracy"] * n)
    interval = mean_interval([1.0] * correct + [0.0] * (n - correct))
    return list(interval) if interval else None


def row(name: str, results: dict[str, Any]) -> tuple[str, ...]:
    overall = results["overall"]
    return (
        name,
        str(overall.get("n", 0)),
        _pct(overall.get("accuracy")),
        format_interval(_accuracy_ci(overall)),
        _pct(overall.get("circular_accuracy")),
        _pct(overall.get("valid_action_share")),
        _pct(overall.get("any_tool_call_rate")),
    )


def summary_line(name: str, results: dict[str, Any]) -> str:
    """``name: n=8, accuracy 12.5% [2.2, 47.1] (95% CI), …`` — one run or dataset in a sentence."""
    cells = dict(zip(HEADERS, row(name, results), strict=True))
    circular = f", circular accuracy {cells['circular']}" if results["overall"].get("circular_accuracy") is not None else ""
    return (
        f"{name}: n={cells['n']}, accuracy {cells['accuracy']} {cells['95% CI']} (95% CI){circular}, "
        f"valid actions {cells['valid actions']}, tool-call rate {cells['tool-call rate']}"
    )


def sample_accuracies(results: dict[str, Any], dataset: str | None = None) -> dict[str, float]:
    """``<dataset>/<index>`` → accuracy of every sample the run scored (one dataset when named).

    Raises ``KeyError`` for results written before per-sample accuracies were recorded.
    """
    found = {}
    for name, block in results["datasets"].items():
        if dataset is not None and name != dataset:
            continue
        if "sample_accuracy" not in block:
            raise KeyError(f"dataset {name} has no per-sample accuracies (run the evaluation again: it resumes and rewrites {RESULTS_FILE})")
        found.update({f"{name}/{index}": float(value) for index, value in block["sample_accuracy"].items()})
    return found


def compare_pair(a: dict[str, Any], b: dict[str, Any], dataset: str | None = None) -> PairedComparison | None:
    """Run ``b`` against run ``a`` on the samples both scored (None when they share none)."""
    first, second = sample_accuracies(a, dataset), sample_accuracies(b, dataset)
    shared = [key for key in first if key in second]
    return paired_comparison([first[k] for k in shared], [second[k] for k in shared])


def verdict(comparison: PairedComparison, b_name: str) -> str:
    """"no detectable difference" when the interval covers 0, else "<B> better" / "<B> worse"."""
    if not comparison.detectable:
        return "no detectable difference"
    return f"{b_name} {'better' if comparison.difference > 0 else 'worse'}"


def paired_cells(label: str, comparison: PairedComparison | None, b_name: str = "B") -> tuple[str, ...]:
    if comparison is None:
        return (label, "0", *("–",) * (len(PAIRED_HEADERS) - 3), "no shared samples")
    return (
        label,
        str(comparison.n),
        _pct(comparison.accuracy_a),
        _pct(comparison.accuracy_b),
        f"{100 * comparison.difference:+.1f} pts",
        format_interval(comparison.interval, signed=True),
        str(comparison.a_only),
        str(comparison.b_only),
        f"{comparison.p_value:.3g}",
        verdict(comparison, b_name),
    )


def _layout(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) if i in (0, len(r) - 1) else cell.rjust(width) for i, (cell, width) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def paired_table(loaded: dict[str, dict[str, Any]]) -> list[str]:
    """Each run against the one before it: overall, then per dataset when there are several."""
    names = list(loaded)
    rows: list[tuple[str, ...]] = [PAIRED_HEADERS]
    for before, after in itertools.pairwise(names):
        a, b = loaded[before], loaded[after]
        rows.append(paired_cells(f"{after} vs {before}", compare_pair(a, b), after))
        shared = [name for name in a["datasets"] if name in b["datasets"]]
        if len(shared) > 1:
            rows += [paired_cells(f"  {name}", compare_pair(a, b, name), after) for name in shared]
    return _layout(rows)


def comparison_table(runs: dict[str, str | Path]) -> str:
    """The table over runs (name → OUTPUT_REPORT folder), the paired tests, flags and report paths."""
    loaded = {name: load_results(path) for name, path in runs.items()}
    lines = _layout([HEADERS, *(row(name, results) for name, results in loaded.items())])
    lines += ["", "95% CI: Wilson interval of the accuracy (n samples)."]
    if len(loaded) > 1:
        lines += ["", "Paired by sample (B − A on the samples both runs scored; 95% paired-bootstrap interval; exact McNemar test):"]
        try:
            lines += paired_table(loaded)
        except KeyError as exc:
            lines.append(f"paired test unavailable: {exc.args[0]}")
    flags = [f"{name}: {flag}" for name, results in loaded.items() for flag in results.get("flags", [])]
    if flags:
        lines += ["", "Flags:", *(f"  {flag}" for flag in flags)]
    lines.append("")
    lines.extend(f"{name}: {Path(path) / REPORT_PDF}  {Path(path) / REPORT_HTML}" for name, path in runs.items())
    return "\n".join(lines)


@dataclass(frozen=True)
class CompareArguments:
    runs: list[str] = field(
        metadata={"help": "NAME=PATH pairs: a run's name and its OUTPUT_REPORT folder; each run is tested against the one before it"}
    )

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
        description=(
            "Print one table comparing evaluation runs (n, accuracy with its 95% interval, valid-action share, tool-call "
            "rate), each run against the one before it on the same samples (paired bootstrap interval, exact McNemar "
            "p-value), the runs' flags and their report paths."
        ),
    )
    try:
        print(comparison_table(args.run_dirs()))
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
