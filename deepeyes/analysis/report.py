"""Write the behaviour report: PNG figures, ``behavior_report.pdf`` and ``behavior_report.html``.

The same matplotlib figures serve all three (as the evaluation report does): PDF pages are
the figures themselves after a title page, the HTML shows the PNG files next to tables whose
cells link into the trajectory browser. A run with grounding rows also gets one picture per
kept example (:func:`~deepeyes.analysis.figures.box_overlay`: the question's image with the
predicted and the true box, and a legend), listed in the HTML beside its IoU.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from deepeyes.analysis import figures
from deepeyes.analysis.browser import slug
from deepeyes.analysis.codeops import ALL_CLASSES, LABELS
from deepeyes.images import ImageLoadError, load_image

REPORT_HTML = "behavior_report.html"
REPORT_PDF = "behavior_report.pdf"
FIGURE_DIR = "figures"

#: Per-run views: (file stem, title in the HTML, drawing function, whether the run has data for it).
RUN_VIEWS: tuple[tuple[str, str, Callable[[str, dict[str, Any]], Figure], Callable[[dict[str, Any]], bool]], ...] = (
    ("tool_use", "Tool use by category", figures.tool_use_figure, lambda b: True),
    ("code_operations", "What code does", figures.code_operations_figure, lambda b: True),
    ("paths", "Decision paths", figures.paths_figure, lambda b: True),
    ("complexity", "Complexity", figures.complexity_figure, lambda b: True),
    ("rl_steps", "Over RL steps", figures.rl_steps_figure, lambda b: b["rl_steps"] is not None),
    ("tool_choice", "Tool-choice accuracy", figures.tool_choice_figure, lambda b: b["tool_choice"]["overall"]["labelled"] > 0),
    ("grounding", "Grounding: predicted and true boxes", figures.grounding_figure, lambda b: b.get("grounding") is not None),
)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _shown(run: dict[str, Any], view: str, applies: Callable[[dict[str, Any]], bool]) -> bool:
    """An empty run shows nothing but, for an RL folder without logged trajectories, the trainer's step metrics."""
    return applies(run) and (not run["empty"] or view == "rl_steps")


def alarm_lines(summary: dict[str, Any]) -> list[str]:
    """One sentence per collapse the alarm found, over all runs."""
    lines = []
    for name, run in summary["runs"].items():
        rl = run.get("rl_steps")
        if rl:
            lines.extend(f"{name}: {message}" for message in rl["collapse"]["messages"])
    return lines


def _title_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [("DeepEyes behaviour analysis", "black"), (f"written {summary['created']}", "black"), ("", "black")]
    for name, run in summary["runs"].items():
        read = run["read"]
        lines.append((f"{name}: {run['source']['kind']} run {run['source']['path']}", "black"))
        lines.append((f"    {read['trajectories']} trajectories, {read['malformed_lines']} malformed lines skipped", "black"))
        if run["empty"]:
            lines.append((f"    {name} is empty: no trajectories to analyse", figures.ALARM_COLOR))
    lines.append(("", "black"))
    alarms = alarm_lines(summary)
    lines.extend((f"ALARM {line}", figures.ALARM_COLOR) for line in alarms)
    if not alarms:
        lines.append(("no tool-use collapse detected", "black"))
    return lines


def draw_figures(summary: dict[str, Any], out: Path) -> list[tuple[str, str, Figure]]:
    """All figures in report order as ``(key, relative PNG path, figure)``, the PNGs written.

    Keys are ``comparison`` and ``<run>/<view>`` with views from :data:`RUN_VIEWS`.
    """
    (out / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    drawn = []
    # Every figure stays open until the PDF has it too (the caller closes them), so pyplot's
    # "more than 20 figures" warning is expected with four runs and says nothing.
    with plt.rc_context({"figure.max_open_warning": 0}):
        if len(summary["runs"]) > 1 and any(not run["empty"] for run in summary["runs"].values()):
            drawn.append(("comparison", f"{FIGURE_DIR}/comparison.png", figures.comparison_figure(summary["comparison"])))
        for name, run in summary["runs"].items():
            for stem, _, draw, applies in RUN_VIEWS:
                if _shown(run, stem, applies):
                    drawn.append((f"{name}/{stem}", f"{FIGURE_DIR}/{slug(name)}_{stem}.png", draw(name, run)))
    for _, path, figure in drawn:
        figure.savefig(out / path, dpi=100)
    return drawn


def write_grounding_pictures(summary: dict[str, Any], out: Path) -> dict[str, list[str | None]]:
    """One PNG per kept grounding example (``figures/<run>_grounding_<i>.png``), by run: the
    relative path, or None where the example's image is not on this machine."""
    pictures: dict[str, list[str | None]] = {}
    for name, run in summary["runs"].items():
        block = run.get("grounding")
        if block is None:
            continue
        paths: list[str | None] = []
        for index, example in enumerate(block["examples"], start=1):
            try:
                if example["image"] is None:
                    raise ImageLoadError("the trajectory names no image")
                picture = figures.box_overlay(load_image(example["image"]), example["box"], example["true_box"], f"IoU {example['iou']:.2f}")
            except ImageLoadError:
                paths.append(None)
                continue
            relative = f"{FIGURE_DIR}/{slug(name)}_grounding_{index}.png"
            picture.save(out / relative)
            paths.append(relative)
        pictures[name] = paths
    return pictures


def _box_text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _grounding_table(run: dict[str, Any], pictures: list[str | None]) -> str:
    block = run["grounding"]
    counts = ", ".join(f"{html.escape(c)} {n}" for c, n in block["rows"].items())
    rows = []
    for example, picture in zip(block["examples"], pictures, strict=True):
        shown = (
            f"<img class='boxes' src='{html.escape(picture)}' alt='boxes of {html.escape(example['id'])}'>"
            if picture
            else f"image not on this machine: <code>{html.escape(str(example['image']))}</code>"
        )
        box, truth = ("–" if b is None else _box_text(b) for b in (example["box"], example["true_box"]))
        rows.append([html.escape(example["category"]), html.escape(example["id"]), f"{example['iou']:.2f}", box, truth, shown])
    return f"<p>Grounding rows per category: {counts}. Boxes in original-image pixels.</p>" + _table(
        ["category", "trajectory", "IoU", "predicted", "truth", "image (predicted and true box)"], rows
    )


def write_pdf(summary: dict[str, Any], drawn: list[tuple[str, str, Figure]], path: Path) -> None:
    with PdfPages(path, metadata={"Title": "DeepEyes behaviour report"}) as pdf:
        table = comparison_cells(summary["comparison"]) if len(summary["runs"]) > 1 else None
        title = figures.title_figure(_title_lines(summary), table)
        pdf.savefig(title)
        plt.close(title)
        for _, _, figure in drawn:
            pdf.savefig(figure)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _link(text: str, groups: dict[str, Any], category: str, group: str) -> str:
    info = groups.get(category, {}).get(group)
    return f"<a href='{html.escape(info['page'])}'>{text}</a>" if info else text


def _tool_table(run: dict[str, Any]) -> str:
    tools, groups = run["tools"], run["browser"]["groups"]
    # runs with videos get a column saying which categories had them (older summaries lack the key)
    videos = bool(run["overall"].get("video_rate"))
    headers = ["category", "n", *(["with video"] if videos else []), "accuracy", "any tool", *(f"uses {html.escape(t)}" for t in tools)]
    headers += ["calls / traj.", "failed", "repeated", "invalid", "turns"]
    rows = []
    for category, block in [("all", run["overall"]), *run["categories"].items()]:
        e = html.escape(category)
        failed = _pct(block["failure_rate"])
        if category != "all":
            links = [_link(html.escape(t), groups, category, f"failed {t} calls") for t in tools if groups.get(category, {}).get(f"failed {t} calls")]
            failed += f" ({', '.join(links)})" if links else ""
        rows.append(
            [
                e,
                str(block["n"]),
                *([_pct(block["video_rate"])] if videos else []),
                _pct(block["accuracy"]),
                _pct(block["any_tool_rate"]),
                *(_pct(block["tool_use_rate"][t]) for t in tools),
                _num(block["tool_calls_per_trajectory"]),
                failed,
                _link(_pct(block["repeat_rate"]), groups, category, "repeated calls"),
                _link(_pct(block["invalid_rate"]), groups, category, "invalid actions"),
                _num(block["mean_turns"]),
            ]
        )
    return _table(headers, rows)


def _code_table(run: dict[str, Any]) -> str:
    groups = run["browser"]["groups"]
    code = run["code_operations"]
    rows = []
    for category, block in [("all", code["overall"]), *code["categories"].items()]:
        cells = [
            _link(f"{block['primary'][cls]} ({_pct(block['primary_share'][cls])})", groups, category, f"code: {LABELS[cls]}")
            for cls in ALL_CLASSES
        ]
        rows.append([html.escape(category), str(block["code_calls"]), *cells])
    return _table(["category", "code calls", *(html.escape(LABELS[c]) for c in ALL_CLASSES)], rows)


def _paths_table(run: dict[str, Any]) -> str:
    """The most frequent paths overall, then the three most frequent per category."""
    rows = [[html.escape(p["path"]), str(p["count"]), _pct(p["share"])] for p in run["paths"]["top"]]
    per_category = [
        [html.escape(category), "<br>".join(f"{html.escape(p['path'])} ({_pct(p['share'])})" for p in top[:3])]
        for category, top in run["paths"]["categories"].items()
    ]
    return _table(["path", "trajectories", "share"], rows) + _table(["category", "most frequent paths"], per_category)


def _choice_table(run: dict[str, Any]) -> str:
    groups = run["browser"]["groups"]
    rows = []
    for category, block in [("all", run["tool_choice"]["overall"]), *run["tool_choice"]["categories"].items()]:
        rows.append(
            [
                html.escape(category),
                str(block["labelled"]),
                _link(_pct(block["match_rate"]), groups, category, "tool choice mismatch"),
                _pct(block["cover_rate"]),
                f"{_pct(block['called_when_none_needed_rate'])} of {block['none_needed']}",
            ]
        )
    return _table(["category", "labelled", "exact match", "covers required", "called a tool where none needed"], rows)


#: How a compared number is shown: (header, kind) with kind "count", "mean" or "share".
COMPARISON_FORMAT: dict[str, tuple[str, str]] = {
    "n": ("trajectories", "count"),
    "accuracy": ("accuracy", "share"),
    "any_tool_rate": ("any tool", "share"),
    "tool_calls_per_trajectory": ("tool calls / traj.", "mean"),
    "failure_rate": ("failed calls", "share"),
    "repeat_rate": ("repeated calls", "share"),
    "invalid_rate": ("invalid turns", "share"),
    "mean_turns": ("turns", "mean"),
    "tool_choice_match_rate": ("tool choice match", "share"),
}


def comparison_cells(comparison: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Plain-text headers and rows of the runs-side-by-side table (value, and delta against the baseline)."""
    keys = [k for k in comparison["metrics"] if any(r.get(k) is not None for r in comparison["runs"].values())]
    headers = ["run", *(COMPARISON_FORMAT.get(k, (k.replace("tool_use_rate/", "uses "), "share"))[0] for k in keys)]
    rows = []
    for name, values in comparison["runs"].items():
        cells = [name]
        for key in keys:
            kind = COMPARISON_FORMAT.get(key, (key, "share"))[1]
            value, delta = values.get(key), comparison["deltas"][name].get(key)
            shown = str(value) if kind == "count" else _num(value) if kind == "mean" else _pct(value)
            if name != comparison["baseline"] and delta is not None and kind != "count":
                shown += f" ({delta:+.2f})" if kind == "mean" else f" ({100 * delta:+.1f} pt)"
            cells.append(shown)
        rows.append(cells)
    return headers, rows


def _comparison_table(comparison: dict[str, Any]) -> str:
    headers, rows = comparison_cells(comparison)
    escaped = [[html.escape(cell) for cell in row] for row in rows]
    return f"<p>In brackets: the difference to <b>{html.escape(comparison['baseline'])}</b>.</p>" + _table([html.escape(h) for h in headers], escaped)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
img { max-width: 100%; width: 1100px; }
img.boxes { width: auto; }
.alarm { color: #c00000; font-weight: bold; font-size: 1.1em; }
.empty { color: #c00000; }
"""


def render_html(summary: dict[str, Any], pngs: dict[str, str], grounding_pictures: dict[str, list[str | None]] | None = None) -> str:
    """The report page; ``pngs`` maps figure keys (``<run>/<view>``, ``comparison``) to relative PNG paths,
    ``grounding_pictures`` a run's grounding examples to theirs (:func:`write_grounding_pictures`)."""
    e = html.escape
    parts = ["<h1>DeepEyes behaviour analysis</h1>", f"<p>written {e(summary['created'])}</p>"]
    parts.extend(f"<p class='alarm'>ALARM {e(line)}</p>" for line in alarm_lines(summary))
    run_rows = []
    for name, run in summary["runs"].items():
        read = run["read"]
        browser = f"<a href='{e(run['browser']['index'])}'>trajectories</a>" if not run["empty"] else "–"
        run_rows.append([e(name), e(run["source"]["kind"]), f"<code>{e(run['source']['path'])}</code>", str(read["trajectories"]), str(read["malformed_lines"]), browser])
    parts.append("<h2>Runs</h2>" + _table(["run", "kind", "path", "trajectories", "malformed lines skipped", "browser"], run_rows))
    for name, run in summary["runs"].items():
        if run["empty"]:
            parts.append(f"<p class='empty'>Run <b>{e(name)}</b> is empty: {e(run['source']['path'])} holds no trajectories.</p>")
        for problem in run["read"]["malformed_examples"]:
            parts.append(f"<p>{e(name)}: {e(problem['file'])} line {problem['line']} skipped: {e(problem['error'])}</p>")
    if "comparison" in pngs:
        parts.append("<h2>Runs side by side</h2>" + _comparison_table(summary["comparison"]) + f"<img src='{e(pngs['comparison'])}' alt='comparison'>")
    for name, run in summary["runs"].items():
        views = [(stem, title) for stem, title, _, applies in RUN_VIEWS if _shown(run, stem, applies)]
        if not views:
            continue
        parts.append(f"<h2>Run {e(name)}</h2>")
        tables = {"tool_use": _tool_table, "code_operations": _code_table, "paths": _paths_table, "tool_choice": _choice_table}
        for stem, title in views:
            parts.append(f"<h3>{e(title)}</h3>")
            if stem == "rl_steps":
                collapse = run["rl_steps"]["collapse"]
                verdict = (
                    "".join(f"<p class='alarm'>{e(m)}</p>" for m in collapse["messages"])
                    or f"<p>No collapse: tool calls per trajectory never stayed below {collapse['fraction']:.0%} of its start for {collapse['patience']} steps.</p>"
                )
                parts.append(verdict)
            if stem in tables:
                parts.append(tables[stem](run))
            if stem == "grounding":  # the examples one by one, larger than on the PDF page's grid
                parts.append(_grounding_table(run, (grounding_pictures or {}).get(name) or [None] * len(run["grounding"]["examples"])))
                continue
            parts.append(f"<img src='{e(pngs[f'{name}/{stem}'])}' alt='{e(name)} {e(title)}'>")
    parts.append("<p>Definitions: docs/behavior_analysis.md.</p>")
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>DeepEyes behaviour analysis</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n"


def write_report(summary: dict[str, Any], out: Path) -> dict[str, str]:
    """Write PNGs, PDF and HTML under ``out``; returns the PNG paths (relative to ``out``) by figure key."""
    drawn = draw_figures(summary, out)
    try:
        write_pdf(summary, drawn, out / REPORT_PDF)
    finally:
        for _, _, figure in drawn:
            plt.close(figure)
    pngs = {key: path for key, path, _ in drawn}
    pictures = write_grounding_pictures(summary, out)
    (out / REPORT_HTML).write_text(render_html(summary, pngs, pictures), encoding="utf-8")
    return pngs
