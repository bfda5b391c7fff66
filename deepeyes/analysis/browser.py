"""The trajectory browser: HTML pages that show single trajectories turn by turn.

Tables in the report say *how often* something happens ("failed code calls in category
chart: 12"); the browser shows *what it looked like*. While the run streams past,
:class:`ExampleKeeper` keeps the first few trajectories of every (category, kind of
example) group — a bounded number, whatever the run's size — and :func:`write_browser`
writes one page per kept trajectory, one list page per group and an index per run.

The trajectory schema records how many images a tool returned, not the images, so a page
shows the question's own images and, per observation, the count of returned images.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from deepeyes.analysis.aggregate import Digest
from deepeyes.analysis.codeops import LABELS, classify

BROWSER_DIR = "browser"


def example_groups(d: Digest) -> list[str]:
    """The kinds of example a trajectory is, e.g. ``failed code calls`` or ``code: crop / zoom / resize``."""
    groups = [f"failed {tool} calls" for tool in sorted(d.tool_failed)]
    if d.invalid:
        groups.append("invalid actions")
    if d.repeated:
        groups.append("repeated calls")
    if not d.total_calls:
        groups.append("no tool call")
    if d.stop_reason != "answer":
        groups.append(f"stopped: {d.stop_reason}")
    if d.accuracy is not None:
        groups.append("correct answers" if d.accuracy > 0 else "wrong answers")
    if d.required is not None and d.used != d.required:
        groups.append("tool choice mismatch")
    groups.extend(f"code: {LABELS[cls]}" for cls in sorted(set(d.code_primary)))
    return groups


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


class ExampleKeeper:
    """Keeps up to ``limit`` trajectories per (category, group) and counts all of them."""

    def __init__(self, limit: int):
        self.limit = limit
        self.records: dict[int, dict[str, Any]] = {}
        self.kept: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.counts: Counter = Counter()
        self._next = 0

    def add(self, record: dict[str, Any], d: Digest) -> None:
        number = None
        for group in example_groups(d):
            key = (d.category, group)
            self.counts[key] += 1
            if len(self.kept[key]) < self.limit:
                if number is None:
                    number, self._next = self._next, self._next + 1
                    self.records[number] = record
                self.kept[key].append(number)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #eee; }
pre { background: #f6f6f6; padding: 0.6em; white-space: pre-wrap; word-break: break-word; }
.turn { border-left: 4px solid #88a; padding-left: 1em; margin: 1.2em 0; }
.error, .timeout, .denied { color: #b00; font-weight: bold; }
.success { color: #070; }
img { max-width: 28em; border: 1px solid #ccc; margin: 0.3em; }
"""


def _page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _image(source: str, page_dir: Path) -> str:
    path = Path(source)
    if path.is_file():
        link = html.escape(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())
        return f'<a href="{link}"><img src="{link}" alt="{html.escape(source)}"></a>'
    return f"<p>image: <code>{html.escape(source)}</code> (not found on this machine)</p>"


def trajectory_page(run: str, record: dict[str, Any], page_dir: Path, back: str) -> str:
    """One trajectory: header facts, the question and its images, then every turn."""
    e = html.escape
    metadata = record.get("metadata") or {}
    facts = {
        "run": run,
        "id": record["id"],
        "category": metadata.get("category") or metadata.get("task") or record.get("data_source"),
        "data source": record.get("data_source"),
        "stop reason": record["stop_reason"],
        "final answer": record.get("final_answer"),
        "ground truth": record.get("ground_truth"),
        "required tools": metadata.get("required_tools"),
        "RL step": metadata.get("step"),
        "tool calls": json.dumps(record["tool_calls"]),
        "reward": json.dumps(record.get("reward")),
    }
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts.items() if v is not None)
    parts = [
        f'<p><a href="{e(back)}">← back</a></p><h1>Trajectory {e(record["id"])}</h1><table>{rows}</table>',
        f"<h2>Question</h2><pre>{e(record['question'])}</pre>",
        "".join(_image(str(source), page_dir) for source in record.get("images") or []),
    ]
    for turn in record["turns"]:
        action = turn["action"]
        kind = action["kind"]
        block = [f"<div class='turn'><h3>Turn {turn['index']}: {e(kind)}</h3><p>model text:</p><pre>{e(turn['model_text'])}</pre>"]
        if kind == "code":
            operations = classify(action.get("content", ""))
            labels = ", ".join(LABELS[c] for c in sorted(operations.classes))
            block.append(f"<p>code ({e(LABELS[operations.primary])}; all: {e(labels)}):</p><pre>{e(action.get('content', ''))}</pre>")
        elif action.get("content"):
            block.append(f"<p>{e(kind)}:</p><pre>{e(action['content'])}</pre>")
        if action.get("reason"):
            block.append(f"<p class='error'>invalid: {e(action['reason'])}</p>")
        observation = turn.get("observation")
        if observation:
            status = observation["status"]
            repeated = " · repeated call" if observation.get("repeated") else ""
            block.append(
                f"<p>observation: <span class='{e(status)}'>{e(status)}</span> · {observation['latency_s']:.2f} s · "
                f"{observation['image_count']} image(s) returned{repeated}</p><pre>{e(observation['text'])}</pre>"
            )
        block.append("</div>")
        parts.append("".join(block))
    return _page(f"{run} · {record['id']}", "".join(parts))


def group_page_name(category: str, group: str) -> str:
    return f"group-{slug(category)}--{slug(group)}.html"


def write_browser(out: Path, run: str, keeper: ExampleKeeper) -> dict[str, Any]:
    """Write ``browser/<run>/``; returns ``{category: {group: {count, kept, page}}}`` (pages relative to ``out``)."""
    e = html.escape
    run_dir = out / BROWSER_DIR / slug(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    for number, record in keeper.records.items():
        (run_dir / f"t{number:06d}.html").write_text(trajectory_page(run, record, run_dir, "index.html"), encoding="utf-8")
    groups: dict[str, dict[str, Any]] = defaultdict(dict)
    for (category, group), numbers in sorted(keeper.kept.items()):
        name = group_page_name(category, group)
        count = keeper.counts[category, group]
        items = "".join(
            f"<tr><td><a href='t{n:06d}.html'>{e(keeper.records[n]['id'])}</a></td><td>{e(keeper.records[n]['stop_reason'])}</td>"
            f"<td>{e(str(keeper.records[n].get('final_answer')))}</td><td>{len(keeper.records[n]['turns'])}</td></tr>"
            for n in numbers
        )
        body = (
            f"<p><a href='index.html'>← {e(run)}</a></p><h1>{e(run)} · {e(category)} · {e(group)}</h1>"
            f"<p>{count} trajectories; the first {len(numbers)} are shown.</p>"
            f"<table><tr><th>id</th><th>stop</th><th>answer</th><th>turns</th></tr>{items}</table>"
        )
        (run_dir / name).write_text(_page(f"{run} {category} {group}", body), encoding="utf-8")
        groups[category][group] = {"count": count, "kept": len(numbers), "page": f"{BROWSER_DIR}/{slug(run)}/{name}"}
    rows = "".join(
        f"<tr><td>{e(category)}</td><td>"
        + " · ".join(f"<a href='{group_page_name(category, g)}'>{e(g)}</a> ({info['count']})" for g, info in entries.items())
        + "</td></tr>"
        for category, entries in groups.items()
    )
    index = f"<p><a href='../../behavior_report.html'>← report</a></p><h1>Trajectories of {e(run)}</h1>"
    index += f"<table><tr><th>category</th><th>examples</th></tr>{rows}</table>" if rows else "<p>No trajectories.</p>"
    (run_dir / "index.html").write_text(_page(f"{run} trajectories", index), encoding="utf-8")
    return {"index": f"{BROWSER_DIR}/{slug(run)}/index.html", "groups": dict(groups)}
