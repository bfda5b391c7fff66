"""The report's figures, drawn with matplotlib from the summary alone.

Every function takes blocks of ``behavior_summary.json`` and nothing else, so each number a
figure shows is in the summary by construction (the grounding view also reads the example
images the summary names). Each returns one A4-landscape figure; the report saves it as PNG
and as a PDF page. :func:`box_overlay` draws a grounding answer's box and the true box on
the question's image (with PIL: the demo's trajectory pages use it too).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image, ImageDraw, ImageFont

from deepeyes.analysis.codeops import ALL_CLASSES, LABELS
from deepeyes.images import ImageFrame, ImageLoadError, load_image
from deepeyes.wire.boxes import box_problem

A4_LANDSCAPE = (11.7, 8.3)
ALARM_COLOR = "#c00000"
#: Outline colours of grounding pictures (Okabe-Ito vermillion and bluish green: told apart
#: with the common colour-vision deficiencies): the model's box and the true box.
PREDICTED_RGB = (213, 94, 0)
TRUTH_RGB = (0, 158, 115)
#: Longest side, in pixels, a grounding picture is shown at (small images are enlarged).
OVERLAY_SIDE = 320
#: Outline widths in shown pixels (drawn inward): the true box wider, so a predicted box on top of it still
#: shows the truth's colour on both sides.
TRUTH_WIDTH, PREDICTED_WIDTH = 3, 2
LEGEND_HEIGHT = 22


def _short(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _value(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _grouped_bars(ax: Axes, labels: list[str], series: dict[str, list[float | None]], title: str, ylabel: str, ylim: float | None = 1.05) -> None:
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(labels))
    for offset, (name, values) in enumerate(series.items()):
        ax.bar(positions + offset * width, [_value(v) for v in values], width=width, label=name)
    ax.set_xticks(positions + width * (len(series) - 1) / 2, [_short(label) for label in labels], rotation=30, ha="right", fontsize=7)
    if ylim is not None:
        ax.set_ylim(0, ylim)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    if series:
        ax.legend(fontsize=6)


def _outline(draw: ImageDraw.ImageDraw, frame: ImageFrame, box: Sequence[float], color: tuple[int, int, int], width: int) -> None:
    """``box`` (x2, y2 exclusive, in the frame's original pixels) outlined in the shown image."""
    x1, y1, x2, y2 = (round(v) for v in frame.to_processed(tuple(box)))  # type: ignore[arg-type]
    draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=width)


def box_overlay(
    image: Image.Image, predicted: Sequence[float] | None, truth: Sequence[float] | None, caption: str = "", side: int = OVERLAY_SIDE
) -> Image.Image:
    """``image`` scaled so its longest side is ``side`` px, the true and the predicted box drawn
    on it, and a legend strip below (``predicted``, ``truth``, then ``caption``, e.g. the IoU).

    Boxes are ``[x1, y1, x2, y2]`` in ``image``'s own pixels (original-image pixels, as the
    grounding reward records ``box`` and ``true_box``); :class:`~deepeyes.images.ImageFrame`
    carries them to the shown size, the one conversion between frames. A box that is no
    region of the image (inverted, degenerate, wholly outside:
    :func:`~deepeyes.wire.boxes.box_problem`) or absent is not drawn, and the legend says why.
    Returns a new RGB image of ``side``-scaled size plus :data:`LEGEND_HEIGHT` rows.
    """
    scale = side / max(image.size)
    shown_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    frame = ImageFrame(image.size, shown_size)
    canvas = Image.new("RGB", (shown_size[0], shown_size[1] + LEGEND_HEIGHT), "white")
    canvas.paste(image.convert("RGB").resize(shown_size, Image.Resampling.BICUBIC), (0, 0))
    draw = ImageDraw.Draw(canvas)
    labels = []
    for name, box, color, width in (("truth", truth, TRUTH_RGB, TRUTH_WIDTH), ("predicted", predicted, PREDICTED_RGB, PREDICTED_WIDTH)):
        problem = "no box" if box is None else box_problem(tuple(box), image.size)  # type: ignore[arg-type]
        if problem is None:
            _outline(draw, frame, box, color, width)  # type: ignore[arg-type]
        labels.append((name if problem is None else f"{name}: {problem}", color))
    font = ImageFont.load_default(size=12)
    x, top = 4, shown_size[1] + 4
    for text, color in reversed(labels):  # predicted first, as the caption's IoU reads
        draw.rectangle((x, top + 2, x + 10, top + 12), fill=color)
        draw.text((x + 14, top), text, fill="black", font=font)
        x += 14 + round(draw.textlength(text, font=font)) + 12
    if caption:
        draw.text((x, top), caption, fill="black", font=font)
    return canvas


def grounding_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 7: example grounding answers, the predicted and true boxes on each question's image.

    Reads the images the summary names (``grounding.examples[*].image``); one that is not on
    this machine is named instead of drawn.
    """
    examples = block["grounding"]["examples"]
    columns = min(4, max(1, len(examples)))
    rows = -(-len(examples) // columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=A4_LANDSCAPE, squeeze=False, gridspec_kw={"top": 0.86, "bottom": 0.03, "hspace": 0.35})
    figure.suptitle(f"{run} — grounding: predicted and true boxes", fontsize=12, fontweight="bold")
    figure.legend(
        handles=[Patch(color=np.array(PREDICTED_RGB) / 255, label="predicted"), Patch(color=np.array(TRUTH_RGB) / 255, label="truth")],
        loc="upper center", ncol=2, fontsize=8, bbox_to_anchor=(0.5, 0.94),
    )
    for ax, example in zip(axes.flat, examples, strict=False):
        title = f"{_short(example['category'], 24)} · IoU {example['iou']:.2f}\n{_short(example['id'], 30)}"
        try:
            if example["image"] is None:
                raise ImageLoadError("the trajectory names no image")
            picture = box_overlay(load_image(example["image"]), example["box"], example["true_box"])
        except ImageLoadError:
            _empty(ax, f"image not on this machine:\n{_short(str(example['image']), 40)}")
        else:
            ax.imshow(np.asarray(picture), interpolation="nearest")
            ax.axis("off")
        ax.set_title(title, fontsize=7)
    for ax in list(axes.flat)[len(examples) :]:
        ax.axis("off")
    return figure


def _empty(ax: Axes, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="#666", transform=ax.transAxes)


def tool_use_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 1: tool use per category — use rate, calls, failure/repeat/invalid rates, combinations."""
    figure, axes = plt.subplots(2, 2, figsize=A4_LANDSCAPE, gridspec_kw={"hspace": 0.55, "wspace": 0.3, "bottom": 0.12, "top": 0.9, "left": 0.07, "right": 0.83})
    figure.suptitle(f"{run} — tool use by category", fontsize=12, fontweight="bold")
    categories, tools = list(block["categories"]), block["tools"]
    labels = ["all", *categories]
    groups = [block["overall"], *(block["categories"][c] for c in categories)]
    _grouped_bars(axes[0, 0], labels, {t: [g["tool_use_rate"][t] for g in groups] for t in tools}, "share of trajectories calling each tool", "share")
    calls = axes[0, 1]
    bottom = np.zeros(len(labels))
    for tool in tools:
        values = np.array([g["calls_per_trajectory"][tool] for g in groups])
        calls.bar(labels, values, bottom=bottom, label=tool)
        bottom += values
    calls.set_title("tool calls per trajectory", fontsize=9)
    calls.set_ylabel("calls", fontsize=8)
    calls.tick_params(axis="x", labelrotation=30, labelsize=7)
    calls.set_xticks(range(len(labels)), [_short(label) for label in labels], ha="right")
    if tools:
        calls.legend(fontsize=6)
    _grouped_bars(
        axes[1, 0],
        labels,
        {name: [g[key] for g in groups] for name, key in (("failed calls", "failure_rate"), ("repeated calls", "repeat_rate"), ("invalid turns", "invalid_rate"))},
        "failure and repeat rate (of calls), invalid rate (of turns)",
        "share",
    )
    _combinations(axes[1, 1], block["paths"]["combinations"])
    return figure


def _combinations(ax: Axes, combinations: dict[str, dict[str, int]]) -> None:
    names = sorted({name for counts in combinations.values() for name in counts})
    if not names:
        _empty(ax, "no trajectories")
        return
    categories = list(combinations)
    left = np.zeros(len(categories))
    for name in names:
        shares = np.array([combinations[c].get(name, 0) / max(1, sum(combinations[c].values())) for c in categories])
        ax.barh([_short(c) for c in categories], shares, left=left, label=name)
        left += shares
    ax.set_xlim(0, 1)
    ax.set_title("tool combinations per trajectory (share)", fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def code_operations_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 2: what the code calls do, per category (primary class shares)."""
    figure, ax = plt.subplots(figsize=A4_LANDSCAPE, gridspec_kw={"left": 0.2, "right": 0.97, "top": 0.88, "bottom": 0.1})
    figure.suptitle(f"{run} — what code calls do (classified from the syntax tree)", fontsize=12, fontweight="bold")
    code = block["code_operations"]
    rows = {"all": code["overall"], **code["categories"]}
    rows = {name: value for name, value in rows.items() if value["code_calls"]}
    if not rows:
        _empty(ax, "no code calls in this run")
        return figure
    names = list(rows)
    left = np.zeros(len(names))
    colors = plt.get_cmap("tab10")
    for index, cls in enumerate(ALL_CLASSES):
        shares = np.array([_value(rows[n]["primary_share"][cls]) for n in names])
        bars = ax.barh([f"{_short(n)} ({rows[n]['code_calls']})" for n in names], shares, left=left, color=colors(index), label=LABELS[cls])
        for bar, share in zip(bars, shares, strict=True):
            if share >= 0.06:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + bar.get_height() / 2, f"{share:.0%}", ha="center", va="center", fontsize=7, color="white")
        left += shares
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of code calls (category label: number of code calls)", fontsize=8)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.07))
    return figure


def paths_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 3: the most frequent decision paths and the transition matrix between actions."""
    figure, (left, right) = plt.subplots(1, 2, figsize=A4_LANDSCAPE, gridspec_kw={"left": 0.25, "right": 0.97, "wspace": 0.45, "width_ratios": [1.1, 1]})
    figure.suptitle(f"{run} — decision paths and transitions", fontsize=12, fontweight="bold")
    top = block["paths"]["top"]
    if top:
        left.barh([_short(p["path"], 40) for p in top], [p["count"] for p in top], color="tab:blue")
        for index, p in enumerate(top):
            left.text(p["count"], index, f" {p['share']:.0%}", va="center", fontsize=7)
        left.invert_yaxis()
        left.tick_params(axis="y", labelsize=7)
        left.set_title(f"most frequent paths ({block['paths']['distinct']} distinct)", fontsize=9)
        left.set_xlabel("trajectories", fontsize=8)
    else:
        _empty(left, "no trajectories")
    matrix = block["transitions"]
    probabilities = np.array(matrix["probabilities"])
    if probabilities.size and len(matrix["from"]) > 1:
        right.imshow(probabilities, cmap="Blues", vmin=0, vmax=1)
        right.set_xticks(range(len(matrix["to"])), matrix["to"], rotation=45, ha="right", fontsize=7)
        right.set_yticks(range(len(matrix["from"])), matrix["from"], fontsize=7)
        for i, row in enumerate(probabilities):
            for j, value in enumerate(row):
                if matrix["counts"][i][j]:
                    right.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color="white" if value > 0.5 else "black")
        right.set_title("transition matrix: P(next action | action)", fontsize=9)
        right.set_xlabel("next", fontsize=8)
        right.set_ylabel("from", fontsize=8)
    else:
        _empty(right, "no transitions")
    return figure


def complexity_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 4: accuracy and tool use against turns and tool calls; with vs without tools."""
    figure, axes = plt.subplots(1, 3, figsize=A4_LANDSCAPE, gridspec_kw={"wspace": 0.6, "bottom": 0.3, "top": 0.85, "left": 0.06, "right": 0.97})
    figure.suptitle(f"{run} — complexity", fontsize=12, fontweight="bold")
    for ax, key, xlabel in ((axes[0], "by_turns", "turns"), (axes[1], "by_tool_calls", "tool calls")):
        rows = block["complexity"][key]
        if not rows:
            _empty(ax, "no trajectories")
            continue
        x = list(range(len(rows)))
        ax.bar(x, [_value(r["accuracy"]) for r in rows], color="tab:green", alpha=0.7, label="accuracy")
        ax.set_xticks(x, [r["bucket"] for r in rows])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        twin = ax.twinx()
        twin.plot(x, [r["tool_calls_per_trajectory"] for r in rows], "o-", color="tab:orange", label="tool calls / trajectory")
        twin.set_ylabel("tool calls per trajectory", fontsize=8)
        for index, r in enumerate(rows):
            ax.text(index, 0.02, f"n={r['n']}", ha="center", fontsize=6, rotation=90)
        ax.set_title(f"accuracy and tool use by {xlabel}", fontsize=9)
        ax.legend(loc="upper left", fontsize=6)
        twin.legend(loc="upper right", fontsize=6)
    split = block["complexity"]["with_vs_without_tools"]
    categories = list(split)
    if categories:
        _grouped_bars(
            axes[2],
            categories,
            {
                "with tools": [split[c]["with_tools"]["accuracy"] for c in categories],
                "without tools": [split[c]["without_tools"]["accuracy"] for c in categories],
            },
            "accuracy with vs without tool calls",
            "accuracy",
        )
    else:
        _empty(axes[2], "no trajectories")
    return figure


def rl_steps_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 5: behaviour over RL steps, with the collapse alarm's threshold and verdict."""
    rl = block["rl_steps"]
    collapse = rl["collapse"]
    figure, axes = plt.subplots(2, 3, figsize=A4_LANDSCAPE, gridspec_kw={"hspace": 0.4, "wspace": 0.3, "top": 0.86})
    fired = bool(collapse["fired_at"])
    title = f"{run} — over RL steps"
    if fired:
        title += f"   TOOL-USE COLLAPSE at step {', '.join(map(str, collapse['fired_at']))}"
    figure.suptitle(title, fontsize=12, fontweight="bold", color=ALARM_COLOR if fired else "black")
    if rl["steps"]:
        steps, series = rl["steps"], rl["series"]
    else:  # no per-step trajectories: the trainer's own metrics
        steps, series = rl["trainer_metrics"]["steps"], {
            "tool_calls_per_trajectory": rl["trainer_metrics"]["series"].get("tools/calls_per_trajectory", []),
            **{k.removeprefix("tools/"): v for k, v in rl["trainer_metrics"]["series"].items() if k.startswith("tools/")},
            **{k: v for k, v in rl["trainer_metrics"]["series"].items() if k.startswith("reward/")},
            "mean_turns": rl["trainer_metrics"]["series"].get("rollout/turns", []),
            "response_tokens": rl["trainer_metrics"]["series"].get("rollout/response_tokens", []),
        }

    def plot(ax: Axes, names: list[str], title: str) -> None:
        drawn = False
        for name in names:
            if series.get(name):
                ax.plot(steps, [_value(v) for v in series[name]], "o-", markersize=3, label=name.split("/")[-1])
                drawn = True
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if drawn:
            ax.legend(fontsize=6)

    per_tool = sorted(name for name in series if name.startswith("calls_per_trajectory/"))
    plot(axes[0, 0], ["tool_calls_per_trajectory", *per_tool], "tool calls per trajectory (all, per tool)")
    if collapse["threshold"] is not None:
        axes[0, 0].axhline(collapse["threshold"], color=ALARM_COLOR, linestyle="--", linewidth=1, label="collapse threshold")
        for step in collapse["fired_at"]:
            axes[0, 0].axvline(step, color=ALARM_COLOR, linewidth=2)
        axes[0, 0].legend(fontsize=6)
    plot(axes[0, 1], ["failure_rate", "invalid_rate", "repeat_rate", "failed_call_rate", "invalid_call_rate"], "failed, invalid and repeated calls")
    plot(axes[0, 2], sorted(name for name in series if name.startswith("tool_use_rate/") or name.endswith("_use_rate")), "share of trajectories using each tool")
    plot(axes[1, 0], ["mean_turns"], "turns per trajectory")
    plot(axes[1, 1], ["response_tokens"], "response length (completion tokens)")
    plot(axes[1, 2], sorted(name for name in series if name.startswith("reward/")), "reward components")
    return figure


def tool_choice_figure(run: str, block: dict[str, Any]) -> Figure:
    """View 6: tool-choice accuracy where samples name their required tools."""
    figure, ax = plt.subplots(figsize=A4_LANDSCAPE, gridspec_kw={"bottom": 0.25, "top": 0.88})
    figure.suptitle(f"{run} — tool-choice accuracy (samples that name their required tools)", fontsize=12, fontweight="bold")
    choice = block["tool_choice"]
    rows = {"all": choice["overall"], **{c: b for c, b in choice["categories"].items() if b["labelled"]}}
    labels = [f"{name} (n={b['labelled']})" for name, b in rows.items()]
    _grouped_bars(
        ax,
        labels,
        {
            "called exactly the required tools": [b["match_rate"] for b in rows.values()],
            "called at least the required tools": [b["cover_rate"] for b in rows.values()],
            "called a tool where none was needed": [b["called_when_none_needed_rate"] for b in rows.values()],
        },
        "",
        "share of labelled trajectories",
    )
    return figure


COMPARISON_METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("any_tool_rate", "any tool"),
    ("failure_rate", "failed calls"),
    ("repeat_rate", "repeated calls"),
    ("invalid_rate", "invalid turns"),
    ("tool_choice_match_rate", "tool choice"),
)


def comparison_figure(comparison: dict[str, Any]) -> Figure:
    """View 7: the runs side by side (rates, then tool calls and turns)."""
    figure, (left, right) = plt.subplots(1, 2, figsize=A4_LANDSCAPE, gridspec_kw={"width_ratios": [2, 1], "bottom": 0.2, "top": 0.88, "wspace": 0.25})
    figure.suptitle("runs side by side", fontsize=12, fontweight="bold")
    runs = comparison["runs"]
    names = list(runs)
    metrics = [(key, label) for key, label in COMPARISON_METRICS if any(runs[n].get(key) is not None for n in names)]
    metrics += [(f"tool_use_rate/{t}", f"uses {t}") for t in comparison["tools"]]
    _grouped_bars(left, [label for _, label in metrics], {n: [runs[n].get(key) for key, _ in metrics] for n in names}, "rates", "share")
    _grouped_bars(
        right,
        ["tool calls / traj.", "turns / traj."],
        {n: [runs[n].get("tool_calls_per_trajectory"), runs[n].get("mean_turns")] for n in names},
        "counts per trajectory",
        "mean",
        ylim=None,
    )
    return figure


def title_figure(lines: list[tuple[str, str]], table: tuple[list[str], list[list[str]]] | None = None) -> Figure:
    """The PDF's first page: each entry ``(text, color)`` wrapped to the page width (coloured lines
    in bold), then ``table`` (headers, rows) — the runs side by side — below them."""
    figure = plt.figure(figsize=A4_LANDSCAPE)
    y = 0.95
    for text, color in lines:
        bold = color != "black"
        for part in textwrap.wrap(text, width=110, subsequent_indent="    ") or [""]:
            figure.text(0.05, y, part, fontsize=10, color=color, family="monospace", fontweight="bold" if bold else "normal", va="top")
            y -= 0.032
    if table is not None:
        headers, rows = table
        ax = figure.add_axes((0.03, 0.03, 0.94, max(0.1, y - 0.08)))
        ax.axis("off")
        ax.set_title("runs side by side (in brackets: difference to the first run)", loc="left", fontsize=10, fontweight="bold")
        rows = [[cell.replace(" (", "\n(") for cell in row] for row in rows]  # the delta under its value
        drawn = ax.table(cellText=rows, colLabels=[textwrap.fill(h, 12) for h in headers], loc="upper center", cellLoc="center")
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(7)
        drawn.scale(1.0, 3.0)
    return figure
