"""The visual report: ``eval_report.pdf`` and a self-contained ``eval_report.html``.

Both show the same content — the flags (data guards, baselines that reach the model), a
summary table over datasets, then per dataset a table per category, the baselines beside
the model, for datasets with box answers a grounding table (Acc@0.5 and mean IoU per
category, issue 26), and three plots (accuracy with its 95 % interval and completion by category,
tool-call rate per tool by category, latency histogram) — drawn once with matplotlib: PDF
pages are the figures themselves, the HTML embeds the plots as PNG and renders the tables
as HTML. Every accuracy is printed with ``n`` and its 95 % interval.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from deepeyes.evaluation import metrics
from deepeyes.trajectory import TOOL_KINDS
from deepeyes.utils.stats import format_interval

#: Flags listed on the summary page (all are in eval_results.json).
MAX_FLAG_LINES = 8
#: (header, key) of the baseline table; rows are the baselines of one dataset.
BASELINE_COLUMNS = ("baseline", "rows", "n", "accuracy", "95% CI", "model on those rows", "reaches the model")

#: Headers of the grounding table; rows are ``all`` and the categories of a dataset's ``grounding`` block.
GROUNDING_COLUMNS = ("category", "n", metrics.ACC_KEY.replace("acc", "Acc"), "95% CI", "mean IoU", "95% CI (IoU)")

#: (header, key path in a metric block, format) — one row per group in every table.
COLUMNS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("n", ("n",), "d"),
    ("accuracy", ("accuracy",), "pct"),
    ("95% CI", ("accuracy_ci",), "ci"),
    ("circular", ("circular_accuracy",), "pct"),
    ("completion", ("task_completion",), "pct"),
    ("any tool", ("any_tool_call_rate",), "pct"),
    *((tool.replace("_", " "), ("tool_call_rate", tool), "pct") for tool in TOOL_KINDS),
    ("call validity", ("tool_call_validity",), "pct"),
    ("valid actions", ("valid_action_share",), "pct"),
    ("turns", ("mean_turns",), "f2"),
    ("mean s", ("latency_mean_s",), "f2"),
    ("p95 s", ("latency_p95_s",), "f2"),
    ("errors", ("errors",), "d"),
)


def _value(block: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(block, dict) or key not in block:
            return None
        block = block[key]
    return block


def _format(value: Any, style: str) -> str:
    if value is None:
        return "–"
    if style == "ci":
        return format_interval(value)
    if style == "pct":
        return f"{100 * value:.1f}%"
    if style == "f2":
        return f"{value:.2f}"
    return str(value)


def table_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Formatted cells, one row per group (dataset or category), in the order of :data:`COLUMNS`."""
    return [[name, *(_format(_value(block, path), style) for _, path, style in COLUMNS)] for name, block in groups.items()]


def baseline_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per baseline of a dataset block: rows it covers, n, accuracy with interval, the model on the same rows."""
    rows = []
    for name, block in (result.get("baselines") or {}).items():
        accuracy, model = block.get("accuracy"), block.get("model_accuracy")
        # The flag rule of deepeyes.evaluation.baselines.flags: a baseline scoring 0 exposes nothing.
        reaches = "–" if accuracy is None or model is None or not block.get("n") else ("YES" if 0 < accuracy >= model else "no")
        rows.append([
            name.replace("_", " ") + (f" ({block['answer']})" if block.get("answer") else ""),
            str(block.get("rows", "all")),
            str(block.get("n", 0)),
            _format(accuracy, "pct"),
            _format(block.get("accuracy_ci"), "ci"),
            _format(model, "pct"),
            reaches,
        ])
    return rows


def grounding_rows(result: dict[str, Any]) -> list[list[str]]:
    """The grounding table of a dataset block (none without box answers): Acc@0.5 and mean IoU with their intervals."""
    grounding = result.get("grounding")
    if not grounding:
        return []
    rows = []
    for name, block in [("all", grounding), *grounding["categories"].items()]:
        low_high = block.get("mean_iou_ci")
        rows.append([
            name,
            str(block["n"]),
            _format(block[metrics.ACC_KEY], "pct"),
            _format(block.get(f"{metrics.ACC_KEY}_ci"), "ci"),
            f"{block['mean_iou']:.3f}",
            "–" if low_high is None else f"[{low_high[0]:.3f}, {low_high[1]:.3f}]",
        ])
    return rows


def flag_lines(results: dict[str, Any]) -> list[str]:
    """Every flag of the run (data guards, trivial baselines reaching the model), one sentence each."""
    return list(results.get("flags") or [])


def _draw_rows(ax, headers: list[str], rows: list[list[str]], title: str, first_width: float = 0.17) -> None:
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    others = (1.0 - first_width) / (len(headers) - 1)
    table = ax.table(
        cellText=rows, colLabels=headers, loc="upper center", cellLoc="center", colWidths=[first_width] + [others] * (len(headers) - 1)
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.3)


def _draw_table(ax, first_header: str, groups: dict[str, dict[str, Any]], title: str) -> None:
    _draw_rows(ax, [first_header, *(header for header, _, _ in COLUMNS)], table_rows(groups), title)


def _bar_groups(
    ax,
    labels: list[str],
    series: dict[str, list[float]],
    title: str,
    ylabel: str,
    intervals: dict[str, list[list[float] | None]] | None = None,
) -> None:
    """Grouped bars; a series named in ``intervals`` gets its 95 % intervals as error bars."""
    width = 0.8 / max(1, len(series))
    for offset, (name, values) in enumerate(series.items()):
        bounds = (intervals or {}).get(name)
        yerr = None
        if bounds is not None:
            yerr = [
                [max(0.0, v - (b[0] if b else v)) for v, b in zip(values, bounds, strict=True)],
                [max(0.0, (b[1] if b else v) - v) for v, b in zip(values, bounds, strict=True)],
            ]
        ax.bar([i + offset * width for i in range(len(labels))], values, width=width, label=name, yerr=yerr, capsize=2 if yerr else 0)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=6)


def _draw_plots(axes, result: dict[str, Any], records: list[dict[str, Any]]) -> None:
    categories = result["categories"]
    labels = list(categories)
    _bar_groups(
        axes[0],
        labels,
        {
            "accuracy": [categories[c].get("accuracy", 0.0) for c in labels],
            "completion": [categories[c].get("task_completion", 0.0) for c in labels],
        },
        "accuracy (95 % interval) and task completion by category",
        "share of samples",
        intervals={"accuracy": [categories[c].get("accuracy_ci") for c in labels]},
    )
    _bar_groups(
        axes[1],
        labels,
        {tool: [categories[c].get("tool_call_rate", {}).get(tool, 0.0) for c in labels] for tool in TOOL_KINDS},
        "tool-call rate by category",
        "share of samples calling the tool",
    )
    axes[2].hist(metrics.latencies(records), bins=min(20, max(5, len(records))), color="tab:gray")
    axes[2].set_title("latency per sample", fontsize=9)
    axes[2].set_xlabel("seconds", fontsize=8)
    axes[2].set_ylabel("samples", fontsize=8)


def dataset_figure(name: str, result: dict[str, Any], records: list[dict[str, Any]], with_table: bool) -> Figure:
    """One dataset's page: category table (PDF only) above the three plots."""
    if with_table:
        flags = result.get("baseline_flags", []) + (result.get("data_guards") or {}).get("flags", [])
        figure = plt.figure(figsize=(11.7, 8.3))  # A4 landscape
        bottom = 0.12 + 0.018 * min(len(flags), MAX_FLAG_LINES)
        grounding = grounding_rows(result)
        ratios = [1, 0.6, *([0.6] if grounding else []), 1.3]
        grid = figure.add_gridspec(
            len(ratios), 3, height_ratios=ratios, left=0.06, right=0.98, top=0.95, bottom=bottom, wspace=0.3, hspace=0.35
        )
        rows = {"all": result["overall"], **result["categories"]}
        _draw_table(figure.add_subplot(grid[0, :]), "category", rows, f"{name} — metrics by category")
        _draw_rows(figure.add_subplot(grid[1, :]), list(BASELINE_COLUMNS), baseline_rows(result), "baselines", first_width=0.3)
        if grounding:
            _draw_rows(figure.add_subplot(grid[2, :]), list(GROUNDING_COLUMNS), grounding, "grounding: box answers by IoU", first_width=0.3)
        axes = [figure.add_subplot(grid[len(ratios) - 1, i]) for i in range(3)]
        if flags:
            shown = [f"FLAG: {flag}" for flag in flags[:MAX_FLAG_LINES]]
            figure.text(0.06, 0.01, "\n".join(shown), fontsize=7, va="bottom", color="darkred")
    else:
        figure, axes = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"left": 0.05, "right": 0.98, "top": 0.9, "bottom": 0.25, "wspace": 0.3})
    _draw_plots(axes, result, records)
    return figure


def summary_figure(results: dict[str, Any]) -> Figure:
    """First page: run settings, the table over datasets, accuracy per dataset."""
    figure = plt.figure(figsize=(11.7, 8.3))
    grid = figure.add_gridspec(3, 1, height_ratios=[0.5, 1, 1.2], left=0.08, right=0.97, top=0.95, bottom=0.15, hspace=0.3)
    header = figure.add_subplot(grid[0])
    header.axis("off")
    header.text(0, 1, _settings_text(results), va="top", family="monospace", fontsize=8)
    groups = {name: block["overall"] for name, block in results["datasets"].items()}
    groups["all datasets"] = results["overall"]
    _draw_table(figure.add_subplot(grid[1]), "dataset", groups, "Evaluation summary")
    ax = figure.add_subplot(grid[2])
    names = list(results["datasets"])
    _bar_groups(
        ax,
        names,
        {
            "accuracy": [results["datasets"][n]["overall"].get("accuracy", 0.0) for n in names],
            "completion": [results["datasets"][n]["overall"].get("task_completion", 0.0) for n in names],
            "any tool call": [results["datasets"][n]["overall"].get("any_tool_call_rate", 0.0) for n in names],
        },
        "per dataset (accuracy with its 95 % interval)",
        "share of samples",
        intervals={"accuracy": [results["datasets"][n]["overall"].get("accuracy_ci") for n in names]},
    )
    return figure


def _settings_text(results: dict[str, Any]) -> str:
    config = results["config"]
    model = f"{config['api_base']} ({config['served_model']})" if config["api_base"] else config["model_path"]
    repeats = results.get("repeats")
    lines = [
        f"DeepEyes evaluation — {results['created']}",
        f"model: {model}" + (f" + adapter {config['adapter_path']}" if config.get("adapter_path") else ""),
        (
            f"tools: {'on' if config['use_tools'] else 'off'}   max_turns: {config['max_turns']}   "
            f"max_samples: {config['max_samples'] or 'all'}   elapsed: {results['elapsed_s']:.1f} s"
        ),
        "accuracy intervals: 95 %, Wilson (0/1 scores) or bootstrap over samples; n = samples",
    ]
    if repeats:
        acc = repeats["accuracy"]
        lines.append(
            f"repeats: {repeats['k']} runs (seeds {', '.join(map(str, repeats['seeds']))}): accuracy mean "
            f"{100 * acc['mean']:.1f} %, sd {100 * acc['std']:.1f} points, range {100 * acc['min']:.1f}–{100 * acc['max']:.1f} %"
        )
    flags = flag_lines(results)
    lines += [f"FLAG: {flag}" for flag in flags[:MAX_FLAG_LINES]]
    if len(flags) > MAX_FLAG_LINES:
        lines.append(f"… and {len(flags) - MAX_FLAG_LINES} more flags (eval_results.json 'flags')")
    return "\n".join(lines)


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _html_rows(headers: tuple[str, ...], rows: list[list[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_table(first_header: str, groups: dict[str, dict[str, Any]]) -> str:
    return _html_rows((first_header, *(c[0] for c in COLUMNS)), table_rows(groups))


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
pre { background: #f6f6f6; padding: 0.8em; }
img { max-width: 100%; }
.flag { color: #a40000; font-weight: bold; }
"""


def render_html(results: dict[str, Any], records: dict[str, list[dict[str, Any]]]) -> str:
    sections = []
    for name, result in results["datasets"].items():
        figure = dataset_figure(name, result, records[name], with_table=False)
        sections.append(
            f"<h2>{html.escape(name)}</h2>"
            f"<p>{result['overall']['n']} samples · trajectories: <code>{html.escape(result['trajectories'])}</code></p>"
            + _html_table("category", {"all": result["overall"], **result["categories"]})
            + _html_rows(BASELINE_COLUMNS, baseline_rows(result))
            + (f"<h3>Grounding: box answers by IoU</h3>{_html_rows(GROUNDING_COLUMNS, grounding_rows(result))}" if result.get("grounding") else "")
            + "".join(f"<p class='flag'>{html.escape(flag)}</p>" for flag in (result.get("data_guards") or {}).get("flags", []))
            + f'<img alt="{html.escape(name)} plots" src="data:image/png;base64,{_png(figure)}">'
        )
        plt.close(figure)
    groups = {name: block["overall"] for name, block in results["datasets"].items()}
    groups["all datasets"] = results["overall"]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>DeepEyes evaluation</title>"
        f"<style>{_STYLE}</style></head><body><h1>DeepEyes evaluation</h1>"
        f"<pre>{html.escape(_settings_text(results))}</pre>"
        + _html_table("dataset", groups)
        + "".join(sections)
        + "<p>Metric definitions: docs/evaluation.md.</p></body></html>\n"
    )


def write_reports(results: dict[str, Any], records: dict[str, list[dict[str, Any]]], html_path: Path, pdf_path: Path) -> None:
    """Write the HTML report and the PDF (summary page + one page per dataset)."""
    html_path.write_text(render_html(results, records), encoding="utf-8")
    with PdfPages(pdf_path, metadata={"Title": "DeepEyes evaluation report"}) as pdf:
        figure = summary_figure(results)
        pdf.savefig(figure)
        plt.close(figure)
        for name, result in results["datasets"].items():
            figure = dataset_figure(name, result, records[name], with_table=True)
            pdf.savefig(figure)
            plt.close(figure)
