"""Render a trajectory (DESIGN §5) as HTML: the one renderer of the chat page and the viewer.

A trajectory record keeps each observation as the text the model saw, so this module
reads the tool outputs back out of that text (code stdout/stderr, search entries, tool
errors; formats of DESIGN §4, built by :mod:`deepeyes.wire`). The images a tool returned
are not part of the schema's observation; the demo stores them, as PNG data URLs, under
``metadata["demo_media"]`` (:class:`TrajectoryMedia`), so a downloaded demo trajectory
re-renders with its figures. Trajectories from evaluation or RL carry only the image
count, and the page says so. A request's videos are named with the number of frames the
model saw (``trajectory.videos``); the demo also stores a thumbnail of each frame. A scored grounding row (its reward details hold ``true_box``)
also shows its first image with the predicted and the true box drawn on it
(:func:`deepeyes.analysis.figures.box_overlay`, boxes in original-image pixels).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from deepeyes import wire
from deepeyes.analysis.aggregate import grounding_example
from deepeyes.analysis.figures import box_overlay
from deepeyes.demo.tools import tool_names
from deepeyes.images import ImageLoadError, load_image, to_data_url
from deepeyes.tool_specs import SELECT_FRAMES
from deepeyes.trajectory import Trajectory, Turn

MEDIA_KEY = "demo_media"
THUMBNAIL_SIDE = 256  # px, longest side of input-image thumbnails read from disk

_CODE_RESULT = re.compile(r"^Code execution result:\nstdout:\n```\n(.*?)\n```\n\nstderr:\n```\n(.*?)\n```", re.DOTALL)
_TEXT_ENTRY = re.compile(r"^(\d+)\. \[(.*?)\]\((.*?)\)$")
_IMAGE_ENTRY = re.compile(r"^(\d+)\. " + re.escape(wire.IMAGE_PLACEHOLDER) + r" ?(.*)$")
_ERROR = re.compile(r"^Error \((.*?)\): (.*)$", re.DOTALL)
_FORMATTER = HtmlFormatter(noclasses=True, style="friendly", nobackground=False)

#: ``metadata["error"]`` of a trajectory the user ended with the Stop button.
STOPPED_BY_USER = "stopped by the user"

STATUS_LABELS = {
    "answer": "answered",
    "max_turns": "stopped: turn limit reached",
    "length": "stopped: the turn was cut at the token limit",
    "token_budget": "stopped: context budget reached",
    "no_action": "ended without an answer tag",
    "error": "ended with an error",
}


@dataclass
class TrajectoryMedia:
    """Images a trajectory's schema does not hold: the inputs, each video's frames and each observation's images.

    ``inputs``, the lists in ``videos`` (one per video, its frames in time order) and the lists
    in ``observations`` (keyed by turn index) are PNG data URLs.
    """

    inputs: list[str] = field(default_factory=list)
    observations: dict[int, list[str]] = field(default_factory=dict)
    videos: list[list[str]] = field(default_factory=list)

    def to_metadata(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "observations": {str(k): list(v) for k, v in self.observations.items()},
            "videos": [list(frames) for frames in self.videos],
        }

    @classmethod
    def of(cls, trajectory: Trajectory) -> TrajectoryMedia:
        """The media stored in ``trajectory.metadata`` (empty when it has none)."""
        stored = trajectory.metadata.get(MEDIA_KEY) or {}
        observations = {int(k): list(v) for k, v in (stored.get("observations") or {}).items()}
        videos = [list(frames) for frames in stored.get("videos") or []]
        return cls(inputs=list(stored.get("inputs") or []), observations=observations, videos=videos)

    def store(self, trajectory: Trajectory) -> None:
        trajectory.metadata[MEDIA_KEY] = self.to_metadata()


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _img(url: str, css: str, alt: str) -> str:
    return f'<img class="{css}" src="{_e(url)}" alt="{_e(alt)}">'


def thumbnail_url(image: Image.Image, side: int = THUMBNAIL_SIDE) -> str:
    """A PNG data URL of ``image`` shrunk so its longest side is at most ``side`` px."""
    copy = image.copy()
    copy.thumbnail((side, side))
    return to_data_url(copy)


def _input_images(trajectory: Trajectory, media: TrajectoryMedia, may_read: Callable[[str], bool] | None = None) -> str:
    if media.inputs:
        return "".join(_img(url, "de-input", f"image_{i}") for i, url in enumerate(media.inputs, start=1))
    parts = []
    for i, source in enumerate(trajectory.images, start=1):
        path = Path(source)
        if may_read is not None and not may_read(source):
            parts.append(f'<span class="de-missing">image_{i}: {_e(path.name)} (not shown: outside the folders this page reads)</span>')
            continue
        try:
            parts.append(_img(thumbnail_url(load_image(path)), "de-input", f"image_{i}"))
        except (ImageLoadError, OSError, ValueError):  # a path on another machine, or "<in-memory>"
            parts.append(f'<span class="de-missing">image_{i}: {_e(source)}</span>')
    return "".join(parts)


def _videos(trajectory: Trajectory, media: TrajectoryMedia) -> str:
    """Each video as ``video_i``, its file name and the number of frames the model saw, with the stored frame thumbnails."""
    parts = []
    for i, video in enumerate(trajectory.videos, start=1):
        frames = int(video.get("frames", 0))
        name = Path(str(video.get("source", ""))).name or str(video.get("source", ""))
        thumbnails = media.videos[i - 1] if i <= len(media.videos) else []
        strip = "".join(_img(url, "de-frame", f"video_{i} frame {k}") for k, url in enumerate(thumbnails, start=1))
        parts.append(
            f'<div class="de-video" data-frames="{frames}"><span class="de-label">video_{i}</span>'
            f'<span class="de-video-name">{_e(name)}</span> · <span class="de-frame-count">{frames} frame{"s" if frames != 1 else ""}</span>'
            + (f'<div class="de-frames">{strip}</div>' if strip else "")
            + "</div>"
        )
    return "".join(parts)


def grounding_picture(trajectory: Trajectory, may_read: Callable[[str], bool] | None = None) -> str:
    """The first input image with the answer's box and the true box, for a scored grounding row; "" otherwise.

    Both boxes are the grounding reward's (:func:`deepeyes.analysis.aggregate.grounding_example`:
    original-image pixels), so they are drawn on the image file itself, read under the same ``may_read`` rule
    as the input thumbnails; an image that cannot be read here is named instead.
    """
    example = grounding_example(trajectory.to_dict())
    if example is None:
        return ""
    label = '<span class="de-label">Predicted and true box</span>'
    source = example["image"]
    if source is None or (may_read is not None and not may_read(source)):
        return f'<div class="de-boxes">{label}<span class="de-missing">boxes not drawn: the image is not readable here</span></div>'
    try:
        picture = box_overlay(load_image(source), example["box"], example["true_box"], f"IoU {example['iou']:.2f}")
    except (ImageLoadError, OSError, ValueError):
        return f'<div class="de-boxes">{label}<span class="de-missing">boxes not drawn: cannot read {_e(Path(source).name)}</span></div>'
    return f'<div class="de-boxes">{label}{_img(to_data_url(picture), "de-boxes-image", "predicted and true box")}</div>'


def _header(trajectory: Trajectory, media: TrajectoryMedia, may_read: Callable[[str], bool] | None = None) -> str:
    facts = []
    dataset = trajectory.data_source or trajectory.metadata.get("dataset")
    if dataset:
        facts.append(f"dataset <b>{_e(dataset)}</b>")
    if trajectory.metadata.get("category"):
        facts.append(f"category <b>{_e(trajectory.metadata['category'])}</b>")
    if trajectory.ground_truth is not None:
        facts.append(f"ground truth <b>{_e(trajectory.ground_truth)}</b>")
    if trajectory.reward:
        scores = ", ".join(f"{_e(k)} {v:.2f}" for k, v in trajectory.reward.items() if isinstance(v, (int, float)))
        facts.append(f"reward {scores}")
    meta = f'<div class="de-facts">{" · ".join(facts)}</div>' if facts else ""
    images = _input_images(trajectory, media, may_read)
    return (
        '<div class="de-question">'
        f'<div class="de-images">{images}</div>{_videos(trajectory, media)}'
        f'<div class="de-qtext"><span class="de-label">Question</span>{_e(trajectory.question)}</div>{meta}'
        f"{grounding_picture(trajectory, may_read)}</div>"
    )


def _thinking(model_text: str) -> str:
    return wire.thinking(model_text) or ""


def _call(turn: Turn) -> str:
    action = turn.action
    if action.kind == "code":
        code = highlight(action.content, PythonLexer(), _FORMATTER)
        return f'<div class="de-call de-call-code"><div class="de-label">Python code</div>{code}</div>'
    if action.kind == "search":
        return f'<div class="de-call de-call-search"><div class="de-label">Text search</div><div class="de-query">{_e(action.content)}</div></div>'
    if action.kind == "image_search":
        return '<div class="de-call de-call-image-search"><div class="de-label">Image search</div><div class="de-query">with the original image</div></div>'
    if action.kind == "invalid":  # the reason is in the tool output when the loop sent one back
        reason = _e(action.reason or "") if turn.observation is None else ""
        return f'<div class="de-call de-call-invalid"><div class="de-label">Invalid action</div>{reason}</div>'
    if action.kind in ("answer",):
        return ""
    # Any other tool (the registry may add some): show its input as text.
    return f'<div class="de-call"><div class="de-label">{_e(action.kind)}</div><pre>{_e(action.content)}</pre></div>'


def _figures(urls: list[str], expected: int, css: str = "de-figure") -> str:
    shown = "".join(_img(url, css, f"figure {i}") for i, url in enumerate(urls, start=1))
    missing = expected - len(urls)
    note = f'<div class="de-missing">{missing} image(s) returned; not stored in this trajectory file</div>' if missing > 0 else ""
    return f'<div class="de-figures">{shown}</div>{note}' if shown or note else ""


def _pre(text: str, css: str, label: str) -> str:
    return f'<div class="de-label">{label}</div><pre class="{css}">{_e(text)}</pre>' if text.strip() else ""


def _search_entries(body: str) -> str:
    items = []
    for block in body.split("\n\n"):
        lines = block.strip().split("\n")
        match = _TEXT_ENTRY.match(lines[0]) if lines else None
        if not match:
            items.append(f"<li><pre>{_e(block)}</pre></li>")
            continue
        _, title, link = match.groups()
        rest = lines[1:]
        date = rest.pop(0)[len("Date published: ") :] if rest and rest[0].startswith("Date published: ") else None
        title_html = f'<a href="{_e(link)}" target="_blank" rel="noopener">{_e(title)}</a>' if link.startswith(("http://", "https://")) else _e(title)
        date_html = f'<div class="de-date">{_e(date)}</div>' if date else ""
        items.append(f'<li><div class="de-title">{title_html}</div>{date_html}<div class="de-snippet">{_e(" ".join(rest))}</div></li>')
    return f'<ol class="de-results">{"".join(items)}</ol>'


def _image_entries(body: str, thumbnails: list[str]) -> str:
    items = []
    for line in body.split("\n"):
        match = _IMAGE_ENTRY.match(line.strip())
        if not match:
            continue
        rank, title = int(match.group(1)), match.group(2)
        thumb = _img(thumbnails[rank - 1], "de-thumb", title) if rank - 1 < len(thumbnails) else '<span class="de-missing">(thumbnail not stored)</span>'
        items.append(f'<li class="de-image-result">{thumb}<div class="de-title">{_e(title)}</div></li>')
    return f'<ol class="de-results de-image-results">{"".join(items)}</ol>'


def _selected_frames(body: str, frames: list[str]) -> str:
    """A ``select_frames`` answer: each frame's line (which frame, at what time, its new image number) above the frame."""
    pieces = body.split(wire.IMAGE_PLACEHOLDER)
    items = []
    for k, text in enumerate(pieces):
        if text.strip():
            items.append(f'<div class="de-frame-caption">{_e(text.strip())}</div>')
        if k < len(pieces) - 1:
            items.append(_img(frames[k], "de-figure de-selected-frame", f"selected frame {k + 1}") if k < len(frames)
                         else '<div class="de-missing">(frame not stored in this trajectory file)</div>')
    return f'<div class="de-selected-frames">{"".join(items)}</div>'


def _observation(turn: Turn, images: list[str]) -> str:
    observation = turn.observation
    if observation is None:
        return ""
    badge = f'<span class="de-status de-status-{_e(observation.status)}">{_e(observation.status)}</span>'
    extra = " · repeated call" if observation.repeated else ""
    head = f'<div class="de-label">Tool output {badge} <span class="de-latency">{observation.latency_s * 1000:.0f} ms{extra}</span></div>'
    text = observation.text
    code = _CODE_RESULT.match(text)
    if code:
        body = _pre(code.group(1), "de-stdout", "stdout") + _pre(code.group(2), "de-stderr", "stderr")
        body += _figures(images, observation.image_count)
        if not body:
            body = '<div class="de-empty">(no output)</div>'
    elif text.startswith(wire.TOOL_RESPONSE_OPEN):
        inner = text[len(wire.TOOL_RESPONSE_OPEN) :].removesuffix(wire.TOOL_RESPONSE_CLOSE).strip()
        error = _ERROR.match(inner)
        if error:
            body = f'<div class="de-error"><b>{_e(error.group(1))}</b>: {_e(error.group(2))}</div>'
        elif turn.action.kind == "image_search":
            body = _image_entries(inner, images)
        elif turn.action.kind == "search":
            body = _search_entries(inner)
        elif turn.action.kind == SELECT_FRAMES.name:
            body = _selected_frames(inner, images)
        else:
            body = f"<pre>{_e(inner)}</pre>" + _figures(images, observation.image_count)
    else:
        body = f"<pre>{_e(text)}</pre>" + _figures(images, observation.image_count)
    return f'<div class="de-observation">{head}{body}</div>'


def render_turn(turn: Turn, images: list[str] | None = None) -> str:
    """One turn: its thinking, its call, and what the tool returned (``images``: data URLs)."""
    thinking = _thinking(turn.model_text)
    if thinking:
        thought = f'<details class="de-thinking" open><summary>Thinking</summary><div>{_e(thinking)}</div></details>'
    elif turn.action.kind in ("none", "invalid"):
        thought = f'<details class="de-thinking" open><summary>Model text</summary><pre>{_e(turn.model_text)}</pre></details>'
    else:
        thought = ""
    return (
        f'<div class="de-turn" data-turn="{turn.index + 1}"><div class="de-turn-head">Turn {turn.index + 1}</div>'
        f"{thought}{_call(turn)}{_observation(turn, images or [])}</div>"
    )


def render_trajectory(trajectory: Trajectory, running: bool = False, may_read: Callable[[str], bool] | None = None) -> str:
    """The whole trajectory as one HTML fragment; ``running`` adds a "working" marker at the end.

    ``may_read``: which input image paths may be read from this machine's disk (the viewer's
    rule for uploaded files, :func:`deepeyes.demo.viewer.image_reader`); None: any (the page's own runs).
    """
    media = TrajectoryMedia.of(trajectory)
    parts = [f'<div class="de-trajectory" data-id="{_e(trajectory.id)}">', _header(trajectory, media, may_read)]
    parts += [render_turn(turn, media.observations.get(turn.index)) for turn in trajectory.turns]
    if running:
        parts.append('<div class="de-running">The model is working…</div>')
    elif trajectory.final_answer is not None:
        parts.append(f'<div class="de-answer"><span class="de-label">Final answer</span>{_e(trajectory.final_answer)}</div>')
    if not running:
        reason = STATUS_LABELS.get(trajectory.stop_reason, trajectory.stop_reason)
        if trajectory.metadata.get("error") == STOPPED_BY_USER:
            reason = STOPPED_BY_USER
        elif trajectory.metadata.get("error"):
            reason += f": {trajectory.metadata['error']}"
        calls = ", ".join(f"{kind} {getattr(trajectory.tool_calls, kind, 0)}" for kind in tool_names())
        seconds = trajectory.timing.get("total_s")
        took = f" · {seconds:.1f} s" if seconds is not None else ""
        parts.append(f'<div class="de-footer">{_e(reason)} · {len(trajectory.turns)} turn(s) · tool calls: {_e(calls)}{took}</div>')
    parts.append("</div>")
    return "".join(parts)


def message_html(text: str, kind: str = "error") -> str:
    """A notice for the page (``kind``: error | note | info)."""
    return f'<div class="de-message de-message-{_e(kind)}">{_e(text)}</div>'


CSS = """
.de-trajectory { font-size: 15px; line-height: 1.45; }
.de-question { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px; margin-bottom: 10px; background: #f6f8fa; }
.de-images { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 6px; }
.de-input { max-height: 160px; border-radius: 4px; border: 1px solid #ccc; }
.de-video { margin-bottom: 6px; font-size: 14px; }
.de-video .de-label { display: inline; margin-right: 8px; }
.de-frames { display: flex; gap: 4px; flex-wrap: wrap; margin-top: 4px; }
.de-frame { max-height: 64px; border: 1px solid #ccc; }
.de-frame-caption { font-size: 13px; color: #57606a; margin-top: 4px; }
.de-boxes { margin-top: 6px; }
.de-boxes-image { max-width: 100%; border: 1px solid #ccc; display: block; }
.de-label { font-weight: 600; font-size: 12px; text-transform: uppercase; color: #57606a; margin: 6px 0 2px 0; display: block; }
.de-qtext .de-label { display: inline; margin-right: 8px; }
.de-facts { font-size: 13px; color: #57606a; margin-top: 4px; }
.de-turn { border-left: 4px solid #8250df; padding: 4px 10px; margin: 10px 0; }
.de-turn-head { font-weight: 700; color: #8250df; }
.de-thinking summary { cursor: pointer; color: #57606a; font-style: italic; }
.de-thinking div { white-space: pre-wrap; color: #444; }
.de-call { margin: 6px 0; }
.de-call pre, .de-observation pre { margin: 0; padding: 6px 8px; border-radius: 4px; overflow-x: auto; font-size: 13px; }
.de-call-code .highlight pre { background: #f0f0f0; }
.de-query { font-family: monospace; background: #fff8c5; padding: 4px 8px; border-radius: 4px; display: inline-block; }
.de-observation { background: #fbfbfb; border: 1px solid #e5e7eb; border-radius: 6px; padding: 6px 8px; }
.de-stdout { background: #eef6ee; }
.de-stderr { background: #fdecec; color: #8a1c1c; }
.de-status { padding: 1px 6px; border-radius: 10px; font-size: 11px; color: #fff; background: #57606a; text-transform: none; }
.de-status-success { background: #1a7f37; }
.de-status-error, .de-status-timeout, .de-status-denied { background: #cf222e; }
.de-latency { font-weight: 400; text-transform: none; }
.de-figure { max-width: 100%; max-height: 360px; border: 1px solid #ddd; margin: 4px 4px 0 0; }
.de-thumb { max-height: 96px; border: 1px solid #ddd; }
.de-results { padding-left: 20px; margin: 4px 0; }
.de-image-result { display: flex; gap: 8px; align-items: center; margin-bottom: 4px; }
.de-title { font-weight: 600; }
.de-date { font-size: 12px; color: #57606a; }
.de-snippet { font-size: 13px; }
.de-error { color: #8a1c1c; background: #fdecec; padding: 4px 8px; border-radius: 4px; }
.de-missing { font-size: 12px; color: #8c6d1f; }
.de-answer { border: 2px solid #1a7f37; border-radius: 8px; padding: 8px 10px; margin-top: 10px; background: #eef6ee; font-size: 16px; }
.de-answer .de-label { display: inline; margin-right: 8px; color: #1a7f37; }
.de-running { color: #8250df; font-style: italic; margin: 8px 0; }
.de-footer { font-size: 12px; color: #57606a; margin-top: 6px; }
.de-message { padding: 8px 10px; border-radius: 6px; margin: 4px 0; }
.de-message-error { background: #fdecec; color: #8a1c1c; border: 1px solid #f5c2c7; }
.de-message-note { background: #fff8c5; color: #5c4400; border: 1px solid #eed888; }
.de-message-info { background: #ddf4ff; color: #0a3069; border: 1px solid #a5d6ff; }
"""
