"""What the main job shows: did cold start and RL teach the tiny model anything?

Reads the quick start's outputs — the ``eval_results.json`` of the base, SFT and RL
evaluations on the held-out split, and the RL run's ``metrics.jsonl`` — and produces

* one table per category: accuracy with ``n`` and its 95 % interval, valid-action share,
  tool-call rate of each run;
* the learning targets with the measured value and whether each is met (the base knows no
  tool, SFT teaches the format, the tools and how to fill them, RL adds accuracy without
  worse tool choice);
* the paired tests SFT vs base and RL vs SFT on the same held-out samples: the accuracy
  difference with its 95 % paired-bootstrap interval and the exact McNemar p-value
  (``deepeyes.utils.stats``, as ``python -m deepeyes.evaluation.compare`` prints them);
* the RL curve (held-out reward and accuracy per step) as a PNG.

    python -m deepeyes.rl.learning_report --out outputs/quickstart

Categories whose samples need a tool are those the synthetic data marks with
``required_tools`` (every category but ``no_tool``).

A dataset graded by IoU (its results hold a ``grounding`` block: box answers) is reported
beside the learning categories — Acc@0.5 with its interval and mean IoU, per run — and
counted neither in the targets, nor in the ``overall`` row, nor in the paired tests: a new
category joins the targets once it too shows learning. The ``overall`` row is then pooled
over the learning datasets alone, exactly as the evaluation pools its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepeyes.rewards.config import DEFAULT_IOU_THRESHOLD
from deepeyes.utils.stats import format_interval, mean_interval, paired_comparison

RUNS: tuple[str, ...] = ("base", "sft", "rl")
NO_TOOL_CATEGORIES: frozenset[str] = frozenset({"no_tool"})
CURVE_FILE = "rl_curve.png"
#: The key of the thresholded IoU in a dataset's ``grounding`` block (the evaluation's ``acc@0.5``).
ACC_KEY = f"acc@{DEFAULT_IOU_THRESHOLD:g}"


@dataclass
class CategoryRow:
    category: str
    n: int
    accuracy: float
    valid_actions: float | None
    #: Share of the category's samples that called any tool (evaluation's ``any_tool_call_rate``).
    any_tool_call_rate: float
    #: The accuracy's 95 % interval as eval_results.json gives it (None for results written before it did).
    accuracy_ci: list[float] | None = None


@dataclass
class GroundingRow:
    """One category of a dataset graded by IoU, in one run: reported, not counted in the targets."""

    category: str
    n: int
    #: Share of the boxes with IoU >= 0.5 and its 95 % interval.
    acc: float
    acc_ci: list[float] | None
    #: Mean IoU in [0, 1] and its 95 % interval.
    mean_iou: float
    mean_iou_ci: list[float] | None
    valid_actions: float | None
    any_tool_call_rate: float


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def load_run(out: Path, run: str) -> dict[str, Any]:
    """The ``eval_results.json`` of ``OUT/eval_<run>``; ``FileNotFoundError`` when absent."""
    path = out / f"eval_{run}" / "eval_results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run bash scripts/quickstart.sh first")
    return json.loads(path.read_text(encoding="utf-8"))


def learning_datasets(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The datasets whose accuracy the targets count: every one without a ``grounding`` block."""
    return {name: block for name, block in results["datasets"].items() if "grounding" not in block}


def _learning_overall(results: dict[str, Any]) -> dict[str, Any]:
    """The ``overall`` block over the learning datasets: the evaluation's own when it covers only them.

    Otherwise pooled from the datasets' ``overall`` blocks: accuracy and tool-call rate weighted
    by samples, the valid-action share by turns (``mean_turns`` × ``n``, as the evaluation counts
    it), the accuracy's interval from the per-sample accuracies (None where a dataset lacks them).
    """
    kept = learning_datasets(results)
    if len(kept) == len(results["datasets"]):
        return results["overall"]
    blocks = [dataset["overall"] for dataset in kept.values() if dataset.get("overall", {}).get("n")]
    n = sum(block["n"] for block in blocks)
    if not n:
        return {"n": 0, "accuracy": 0.0, "any_tool_call_rate": 0.0}
    judged = [block for block in blocks if block.get("valid_action_share") is not None]
    turns = sum(block["mean_turns"] * block["n"] for block in judged)
    samples = [dataset.get("sample_accuracy") for dataset in kept.values()]
    return {
        "n": n,
        "accuracy": sum(block["accuracy"] * block["n"] for block in blocks) / n,
        "valid_action_share": sum(b["valid_action_share"] * b["mean_turns"] * b["n"] for b in judged) / turns if turns else None,
        "any_tool_call_rate": sum(block["any_tool_call_rate"] * block["n"] for block in blocks) / n,
        "accuracy_ci": None if None in samples else _ci([float(value) for values in samples for value in values.values()]),
    }


def _ci(values: list[float]) -> list[float] | None:
    """The 95 % interval of a mean accuracy, as the evaluation computes it."""
    interval = mean_interval(values)
    return None if interval is None else list(interval)


def category_rows(results: dict[str, Any]) -> list[CategoryRow]:
    """Every category of every learning dataset of one run, plus the ``overall`` row (over them) last."""
    rows = []
    for dataset in learning_datasets(results).values():
        for name, block in dataset.get("categories", {}).items():
            if block.get("n"):
                rows.append(
                    CategoryRow(
                        name, block["n"], block["accuracy"], block.get("valid_action_share"), block["any_tool_call_rate"], block.get("accuracy_ci")
                    )
                )
    overall = _learning_overall(results)
    rows.append(
        CategoryRow(
            "overall",
            overall.get("n", 0),
            overall.get("accuracy", 0.0),
            overall.get("valid_action_share"),
            overall.get("any_tool_call_rate", 0.0),
            overall.get("accuracy_ci"),
        )
    )
    return rows


def grounding_rows(results: dict[str, Any]) -> list[GroundingRow]:
    """Every category of every dataset graded by IoU in one run (none without box answers)."""
    rows = []
    for dataset in results["datasets"].values():
        grounding = dataset.get("grounding")
        if not grounding:
            continue
        for name, block in grounding["categories"].items():
            behaviour = dataset.get("categories", {}).get(name, {})
            rows.append(
                GroundingRow(
                    name,
                    block["n"],
                    block[ACC_KEY],
                    block.get(f"{ACC_KEY}_ci"),
                    block["mean_iou"],
                    block.get("mean_iou_ci"),
                    behaviour.get("valid_action_share"),
                    behaviour.get("any_tool_call_rate", 0.0),
                )
            )
    return rows


def _pooled(rows: list[CategoryRow], keep) -> tuple[float | None, float | None, float | None]:
    """Sample-weighted accuracy, valid-action share and tool-call rate over the kept categories."""
    chosen = [r for r in rows if r.category != "overall" and keep(r.category)]
    n = sum(r.n for r in chosen)
    if not n:
        return None, None, None
    valid = [r for r in chosen if r.valid_actions is not None]
    valid_n = sum(r.n for r in valid)
    return (
        sum(r.accuracy * r.n for r in chosen) / n,
        sum(r.valid_actions * r.n for r in valid) / valid_n if valid_n else None,
        sum(r.any_tool_call_rate * r.n for r in chosen) / n,
    )


def _iou_interval(interval: list[float] | None) -> str:
    """``[0.012, 0.345]``: IoU is a fraction, shown to three places as the evaluation report does."""
    return "–" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def category_table(runs: dict[str, list[CategoryRow]], grounding: dict[str, list[GroundingRow]] | None = None) -> str:
    """One line per category and run: n, accuracy, valid actions, tool-call rate, the accuracy's 95 % interval.

    ``grounding`` rows follow under their own rule: accuracy is Acc@0.5, and the mean IoU
    with its interval closes the line; they are not counted in ``overall`` or the targets.
    """
    header = f"{'category':<14}{'run':<6}{'n':>5}{'accuracy':>10}{'valid actions':>15}{'tool-call rate':>16}  {'accuracy 95% CI'}"
    lines = [header, "-" * len(header)]
    categories = list(dict.fromkeys(r.category for rows in runs.values() for r in rows))
    for category in categories:
        for run, rows in runs.items():
            for r in rows:
                if r.category == category:
                    lines.append(
                        f"{category:<14}{run:<6}{r.n:>5}{_pct(r.accuracy):>10}{_pct(r.valid_actions):>15}{_pct(r.any_tool_call_rate):>16}"
                        f"  {format_interval(r.accuracy_ci)}"
                    )
    boxes = {run: rows for run, rows in (grounding or {}).items() if rows}
    if boxes:
        lines.append(f"-- reported beside, not counted in overall or the targets: box answers, accuracy = {ACC_KEY.replace('acc', 'Acc')} --")
        for category in dict.fromkeys(r.category for rows in boxes.values() for r in rows):
            for run, rows in boxes.items():
                for g in rows:
                    if g.category == category:
                        lines.append(
                            f"{category:<14}{run:<6}{g.n:>5}{_pct(g.acc):>10}{_pct(g.valid_actions):>15}{_pct(g.any_tool_call_rate):>16}"
                            f"  {format_interval(g.acc_ci)}  mean IoU {g.mean_iou:.3f} {_iou_interval(g.mean_iou_ci)}"
                        )
    return "\n".join(lines)


def sample_accuracies(results: dict[str, Any]) -> dict[str, float] | None:
    """``<dataset>/<index>`` → accuracy of the learning datasets' samples; None for results without per-sample accuracies."""
    found: dict[str, float] = {}
    for name, block in learning_datasets(results).items():
        if "sample_accuracy" not in block:
            return None
        found.update({f"{name}/{index}": float(value) for index, value in block["sample_accuracy"].items()})
    return found


def paired_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """SFT vs base and RL vs SFT on the held-out samples both runs scored, one line each."""
    lines = []
    for before, after in (("base", "sft"), ("sft", "rl")):
        if before not in results or after not in results:
            continue
        first, second = sample_accuracies(results[before]), sample_accuracies(results[after])
        if first is None or second is None:
            lines.append(f"{after} vs {before}: unavailable (eval_results.json without per-sample accuracies; re-run the evaluation)")
            continue
        shared = [key for key in first if key in second]
        comparison = paired_comparison([first[k] for k in shared], [second[k] for k in shared])
        if comparison is None:
            lines.append(f"{after} vs {before}: no shared samples")
            continue
        verdict = "no detectable difference" if not comparison.detectable else f"{after} {'better' if comparison.difference > 0 else 'worse'}"
        lines.append(
            f"{after} vs {before}: n={comparison.n}, {_pct(comparison.accuracy_b)} vs {_pct(comparison.accuracy_a)}, "
            f"{100 * comparison.difference:+.1f} points {format_interval(comparison.interval, signed=True)} (95% paired bootstrap), "
            f"right only by {after} {comparison.b_only} / only by {before} {comparison.a_only}, exact McNemar p = {comparison.p_value:.3g}: {verdict}"
        )
    return lines


def targets(runs: dict[str, list[CategoryRow]]) -> list[tuple[str, str, str, bool | None]]:
    """``(target, required, measured, met)`` for each learning target (``met`` None when not measurable).

    The pretrained base knows no tool, so it must fail every tool-needing category (its no-tool
    accuracy is reported, not bounded: copying a quoted word is what pretraining teaches).
    SFT must answer half the held-out questions and a third of every tool category, in the
    wire format, calling tools where they are needed and not elsewhere. RL must add ten points
    without worse tool choice (tool categories called at least as often, the no-tool category
    no more often than SFT did or 20 %, whichever is higher).
    """
    overall = {run: next(r for r in rows if r.category == "overall") for run, rows in runs.items()}
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(name: str, required: str, value: float | None, ok) -> None:
        rows.append((name, required, _pct(value), None if value is None else bool(ok(value))))

    def tool_categories(run: str) -> list[CategoryRow]:
        return [r for r in runs[run] if r.category != "overall" and r.category not in NO_TOOL_CATEGORIES]

    if "base" in overall:
        for row in tool_categories("base"):
            add(f"base accuracy, {row.category}", "<= 5 %", row.accuracy, lambda v: v <= 0.05)
        for row in runs["base"]:
            if row.category in NO_TOOL_CATEGORIES:
                add(f"base accuracy, {row.category} (reported)", "–", row.accuracy, lambda v: True)
    if "sft" in overall:
        add("SFT held-out accuracy", ">= 50 %", overall["sft"].accuracy, lambda v: v >= 0.5)
        for row in tool_categories("sft"):
            add(f"SFT accuracy, {row.category}", ">= 30 %", row.accuracy, lambda v: v >= 0.3)
        sft = runs["sft"]
        _, valid, _ = _pooled(sft, lambda c: True)
        add("SFT valid actions", ">= 90 %", valid, lambda v: v >= 0.9)
        _, _, tool_rate = _pooled(sft, lambda c: c not in NO_TOOL_CATEGORIES)
        add("SFT tool-call rate, tool categories", ">= 80 %", tool_rate, lambda v: v >= 0.8)
        _, _, no_tool_rate = _pooled(sft, lambda c: c in NO_TOOL_CATEGORIES)
        add("SFT tool-call rate, no-tool category", "<= 20 %", no_tool_rate, lambda v: v <= 0.2)
    if "sft" in overall and "rl" in overall:
        gain = overall["rl"].accuracy - overall["sft"].accuracy
        rows.append(("RL accuracy gain over SFT", ">= +10 points", f"{100 * gain:+.1f} points", gain >= 0.10))
        _, _, sft_tool = _pooled(runs["sft"], lambda c: c not in NO_TOOL_CATEGORIES)
        _, _, rl_tool = _pooled(runs["rl"], lambda c: c not in NO_TOOL_CATEGORIES)
        if sft_tool is not None and rl_tool is not None:
            add("RL tool-call rate, tool categories", f">= {_pct(sft_tool)}", rl_tool, lambda v: v >= sft_tool)
        _, _, sft_none = _pooled(runs["sft"], lambda c: c in NO_TOOL_CATEGORIES)
        _, _, rl_none = _pooled(runs["rl"], lambda c: c in NO_TOOL_CATEGORIES)
        if sft_none is not None and rl_none is not None:
            bound = max(sft_none, 0.2)
            add("RL tool-call rate, no-tool category", f"<= {_pct(bound)}", rl_none, lambda v: v <= bound)
    return rows


def targets_table(rows: list[tuple[str, str, str, bool | None]]) -> str:
    header = f"{'target':<38}{'required':>14}{'measured':>16}  met"
    lines = [header, "-" * (len(header) + 2)]
    for name, required, measured, met in rows:
        mark = "–" if met is None else ("yes" if met else "NO")
        lines.append(f"{name:<38}{required:>14}{measured:>16}  {mark}")
    return "\n".join(lines)


def plot_curve(metrics_path: Path, png: Path) -> Path | None:
    """Plot held-out reward and accuracy per RL step from ``metrics.jsonl``; None without eval records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    points = [(r["step"], r["eval/critic/score/mean"], r.get("eval/reward/accuracy")) for r in records if "eval/critic/score/mean" in r]
    if not points:
        return None
    steps, rewards, accuracies = zip(*points, strict=True)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(steps, rewards, marker="o", label="held-out reward (mean)")
    if all(a is not None for a in accuracies):
        axis.plot(steps, accuracies, marker="s", label="held-out accuracy")
    axis.set_xlabel("RL step")
    axis.set_ylabel("value")
    axis.set_title("RL on the tiny model: held-out prompts")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return png


def report(out: Path) -> tuple[str, bool]:
    """The full printed report of a quick-start folder and whether every measured target is met."""
    results = {run: load_run(out, run) for run in RUNS if (out / f"eval_{run}" / "eval_results.json").is_file()}
    runs = {run: category_rows(block) for run, block in results.items()}
    if not runs:
        raise FileNotFoundError(f"no eval_<run>/eval_results.json under {out}: run bash scripts/quickstart.sh first")
    goal_rows = targets(runs)
    grounding = {run: grounding_rows(block) for run, block in results.items()}
    parts = ["Per category (held-out split):", category_table(runs, grounding), "", "Learning targets:", targets_table(goal_rows)]
    paired = paired_lines(results)
    if paired:
        parts += ["", "Paired by held-out sample (B − A):", *paired]
    metrics = out / "rl" / "metrics.jsonl"
    if metrics.is_file():
        png = plot_curve(metrics, out / CURVE_FILE)
        parts += ["", f"RL curve: {png}" if png else "RL curve: no held-out evaluation records in the RL metrics"]
    return "\n".join(parts), all(met for *_, met in goal_rows if met is not None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepeyes.rl.learning_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/quickstart"), help="the quick start's OUT folder")
    args = parser.parse_args(argv)
    try:
        text, _ = report(args.out)
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
