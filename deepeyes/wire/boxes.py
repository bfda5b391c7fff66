"""Box answers (DESIGN §4): read a bounding box from the text of an ``<answer>``.

Qwen2.5-VL answers a grounding question with absolute pixel coordinates of the image it
saw, usually as JSON: ``{"bbox_2d": [x1, y1, x2, y2], "label": "cup"}``, or a list of such
objects, often inside a ```` ```json ```` fence (the Qwen2.5-VL technical report's absolute
coordinates; its grounding cookbook parses the same shape). VLM-R1 and other REC data
answer with a bare ``[x1, y1, x2, y2]``. Every one of these forms is read here, by one
parser, so the reward, the evaluation metric and the demo agree on what a model's box is.

Accepted (:func:`parse_box` gives a box and, where written, a label):

* a bare list ``[10, 20, 110, 220]`` or ``[10.0, 20.0, 110.0, 220.0]``;
* a JSON object with ``bbox_2d`` (``label`` optional);
* a JSON list of such objects (or of bare lists): the **first** one is the answer, so
  listing many candidates cannot win more than the first of them;
* any of the above in a Markdown code fence;
* text around exactly one bracketed list: ``the red cup: [10, 20, 110, 220]`` (the text is the label).

Refused, with the reason in :attr:`BoxAnswer.error` (never an exception): no box at all,
a box of the wrong length, non-numeric or non-finite values, values past
:data:`~deepeyes.tool_specs.MAX_PIXEL_COORDINATE`, and several bracketed boxes in free text.
Geometry (inverted, degenerate, out-of-image) is not the parser's business: a parsed box is
returned as written and :func:`box_problem` names what is wrong with it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from deepeyes.tool_specs import MAX_PIXEL_COORDINATE

#: A box ``(x1, y1, x2, y2)`` in pixels: left, top, right, bottom.
Box = tuple[float, float, float, float]

# Innermost bracket groups only, each at most 200 characters: linear in the text's length.
_BRACKETS = re.compile(r"\[([^\[\]]{0,200})\]")
_FENCE = re.compile(r"^```[A-Za-z]*\s*\n?(.*?)\n?```$", re.DOTALL)


@dataclass(frozen=True)
class BoxAnswer:
    """A parsed answer: ``box`` (None when refused), its ``label`` if any, and why it was refused."""

    box: Box | None
    label: str | None = None
    error: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _coordinates(values: list[Any], where: str) -> BoxAnswer:
    if len(values) != 4:
        return BoxAnswer(None, error=f"{where} has {len(values)} values, not four [x1, y1, x2, y2]")
    numbers = [_number(v) for v in values]
    if any(n is None for n in numbers):
        return BoxAnswer(None, error=f"{where} has non-numeric values {values!r}")
    if not all(math.isfinite(n) and abs(n) <= MAX_PIXEL_COORDINATE for n in numbers):  # type: ignore[arg-type]
        return BoxAnswer(None, error=f"{where} has values that are no pixel coordinates (beyond ±{MAX_PIXEL_COORDINATE})")
    return BoxAnswer(tuple(numbers))  # type: ignore[arg-type]


def _from_json(value: Any) -> BoxAnswer:
    """A box from a decoded JSON value (list of numbers, object, or list of either)."""
    if isinstance(value, dict):
        if "bbox_2d" not in value:
            return BoxAnswer(None, error="the JSON object has no 'bbox_2d'")
        box = value["bbox_2d"]
        if not isinstance(box, list):
            return BoxAnswer(None, error=f"'bbox_2d' must be a list [x1, y1, x2, y2], got {box!r}")
        label = value.get("label")
        parsed = _coordinates(box, "'bbox_2d'")
        return BoxAnswer(parsed.box, label if isinstance(label, str) else None, parsed.error)
    if isinstance(value, list):
        if not value:
            return BoxAnswer(None, error="the answer is an empty list")
        if isinstance(value[0], (dict, list)):
            return _from_json(value[0])
        return _coordinates(value, "the box")
    return BoxAnswer(None, error="the answer holds no box")


def _bracketed(text: str) -> BoxAnswer:
    groups = list(_BRACKETS.finditer(text))
    if not groups:
        return BoxAnswer(None, error="the answer holds no box [x1, y1, x2, y2]")
    if len(groups) > 1:
        return BoxAnswer(None, error=f"the answer holds {len(groups)} bracketed lists; write one box")
    group = groups[0]
    items = [item.strip() for item in group.group(1).split(",")]
    values: list[Any] = []
    for item in items:
        try:
            values.append(float(item))
        except ValueError:
            values.append(item)
    parsed = _coordinates(values, "the box")
    label = (text[: group.start()] + " " + text[group.end() :]).strip(" \t\n:=-,.") or None
    return BoxAnswer(parsed.box, label, parsed.error)


def parse_box(text: str | None) -> BoxAnswer:
    """Read the box in an answer's text (the content of ``<answer>``; see the module doc).

    Never raises: a refused answer has ``box`` None and ``error`` saying why.
    """
    if text is None or not text.strip():
        return BoxAnswer(None, error="no answer")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body[:1] in "[{":
        try:
            return _from_json(json.loads(body))
        except (json.JSONDecodeError, RecursionError):
            pass  # not JSON as a whole: fall back to the one bracketed list in it
    return _bracketed(body)


def box_problem(box: Box, size: tuple[float, float] | None = None) -> str | None:
    """What makes ``box`` unusable as a region, or None: ``inverted`` (x2 < x1 or y2 < y1),
    ``degenerate`` (zero width or height), ``outside`` (no overlap with a ``size``
    = (width, height) image; None: no image to check against)."""
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return "inverted"
    if x2 == x1 or y2 == y1:
        return "degenerate"
    if size is not None and (x2 <= 0 or y2 <= 0 or x1 >= size[0] or y1 >= size[1]):
        return "outside"
    return None


def format_box(box: Box, label: str | None = None) -> str:
    """The canonical answer text for ``box`` (integers, Qwen2.5-VL's JSON object when labelled)."""
    coordinates = [round(v) for v in box]
    if label is None:
        return json.dumps(coordinates)
    return json.dumps({"bbox_2d": coordinates, "label": label}, ensure_ascii=False)
