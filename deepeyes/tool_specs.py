"""What the record, the grammar and the rewards know about each tool, declared statically.

DESIGN §1 ("one tool registry, specs at the bottom"): the trajectory record counts calls per
tool, the wire parser reads a ``<tool_call>``'s name and arguments, and the rewards weigh
calls by tool. None of them may load a tool's runtime (a sandbox client, a search index),
and whether a record is valid must not depend on what a process happened to register. So
the tools are listed here once, with all that those readers need, and this module imports
nothing from the package: it is the floor the others stand on. The runtimes (open /
execute / close) live in :mod:`deepeyes.tools` and find their spec here by name.

A new tool is a :class:`ToolSpec` in :data:`TOOL_SPECS` (its name also in :data:`ToolName`,
as a field of :class:`deepeyes.trajectory.ToolCallCounts` and in ``trajectory.schema.json``;
tests check that they agree), then a runtime in :mod:`deepeyes.tools.registry`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

#: The tools, in the order they are listed to users and counted.
ToolName = Literal["code", "search", "image_search", "image_zoom_in_tool", "select_frames"]
ObservationStatus = Literal["success", "error", "timeout", "denied", "disabled", "budget_exceeded"]
#: Statuses of a call that was refused before it ran: counted as invalid, not as a call.
REFUSED_STATUSES: tuple[ObservationStatus, ...] = ("disabled", "budget_exceeded")
#: Statuses of a call that ran and failed.
FAILED_STATUSES: tuple[ObservationStatus, ...] = ("error", "timeout", "denied")
#: Counters kept beside the per-tool counts (see :class:`deepeyes.trajectory.ToolCallCounts`).
COUNTER_KEYS: tuple[str, ...] = ("invalid", "failed", "repeated")
#: Action kinds that are no tool, and the counters: no tool name or alias may take them.
RESERVED_NAMES: tuple[str, ...] = ("answer", "invalid", *COUNTER_KEYS)
#: Longer search queries are refused: they are a runaway generation, not a question.
MAX_QUERY_CHARS = 512
#: Box coordinates beyond this are no pixel of any image Qwen2.5-VL reads (its longest side
#: is far below): refused, so that no coordinate reaches a tool as NaN, infinity or a huge int.
MAX_PIXEL_COORDINATE = 1_000_000
#: Frames one ``select_frames`` call may ask for: more is a runaway list, not a look (the tool
#: manager shows at most ``tools.max_images_per_round`` of them anyway).
MAX_SELECTED_FRAMES = 32
#: Seconds beyond this are no time of any video the loop decodes (a day): refused, as boxes are.
MAX_FRAME_TIME_S = 86_400.0

#: Reads a call's JSON ``arguments`` (``None`` when absent) into the call's canonical
#: content: what the tool executes and what identifies a repeated call.
ArgumentParser = Callable[[Any], str]


class ToolArgumentError(ValueError):
    """A tool call's arguments are wrong; the message is worded for the model."""


@dataclass(frozen=True)
class ToolCall:
    """How the model calls a tool inside a ``<tool_call>`` block."""

    #: The ``"name"`` the model writes (exact: aliases are for users, not the model).
    name: str
    parse_arguments: ArgumentParser


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the record, the grammar and the rewards see it."""

    #: The action kind and the count key (``Action.kind``, ``ToolCallCounts``, tool stats).
    name: ToolName
    #: Other names accepted wherever a user names the tool (the seed's names, configs).
    aliases: tuple[str, ...]
    #: ``None``: the model calls the tool with a block of its own (``<code>``), not a ``<tool_call>``.
    call: ToolCall | None

    def accepted_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases, *((self.call.name,) if self.call else ()))


def _no_arguments(arguments: Any) -> str:
    if arguments not in (None, {}):
        raise ToolArgumentError("image_search takes no arguments: it always searches with the original image.")
    return ""


def _search_query(arguments: Any) -> str:
    query = arguments.get("query") if isinstance(arguments, dict) else None
    if not isinstance(query, str) or not query.strip():
        raise ToolArgumentError('search needs {"arguments": {"query": "<non-empty text>"}}.')
    if len(query) > MAX_QUERY_CHARS:
        raise ToolArgumentError(f"The search query is longer than {MAX_QUERY_CHARS} characters.")
    return query.strip()


def _zoom_box(arguments: Any) -> str:
    """DeepEyes v1's box in pixels of the image as the model saw it, rounded; ``label`` optional;
    ``image`` (1-based, default 1) names the image: an input image, or a frame ``select_frames``
    showed under that number. The canonical content leaves ``image`` out when it is 1, so v1's
    calls keep their content."""
    usage = 'image_zoom_in_tool needs {"arguments": {"bbox_2d": [x1, y1, x2, y2], "label": "<optional>", "image": <optional number>}}'
    if not isinstance(arguments, dict) or "bbox_2d" not in arguments:
        raise ToolArgumentError(usage + ".")
    box = arguments["bbox_2d"]
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        raise ToolArgumentError(f"bbox_2d must be four numbers [x1, y1, x2, y2]; {usage}.")
    # NaN, infinities and integers past float range cannot be rounded to a pixel (ValueError /
    # OverflowError otherwise); NaN fails every comparison, so one bound refuses them all.
    if not all(abs(v) <= MAX_PIXEL_COORDINATE for v in box):
        raise ToolArgumentError(f"bbox_2d values must be finite pixel coordinates within ±{MAX_PIXEL_COORDINATE}; {usage}.")
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise ToolArgumentError(f"bbox_2d [{x1}, {y1}, {x2}, {y2}] is empty: x2 must exceed x1 and y2 exceed y1.")
    label = arguments.get("label")
    if label is not None and not isinstance(label, str):
        raise ToolArgumentError("label must be a string.")
    image = arguments.get("image", 1)
    if not _is_count(image):
        raise ToolArgumentError(f"image must be an image number (1, 2, ...), got {image!r}; {usage}.")
    unknown = sorted(set(arguments) - {"bbox_2d", "label", "image"})
    if unknown:
        raise ToolArgumentError(f"unknown argument(s) {unknown}; {usage}.")
    call: dict[str, Any] = {"bbox_2d": [x1, y1, x2, y2], "label": (label or "").strip()}
    if image != 1:
        call["image"] = image
    return json.dumps(call)


def _is_count(value: Any) -> bool:
    """A whole number from 1 (a JSON integer; a bool is no number here), at most
    :data:`MAX_PIXEL_COORDINATE`, so a runaway integer never reaches a message."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PIXEL_COORDINATE


def _frame_choice(arguments: Any) -> str:
    """Which frames of which video: ``{"video": k (default 1), "indices": [i, ...]}`` (positions
    in ``video_k_frames``, from 0) or ``{"video": k, "times": [s, ...]}`` (seconds; the nearest
    sampled frame). Canonical content: ``{"video": k, "indices"|"times": [...]}``. Whether the
    video and frames exist is the runtime's to say (the spec cannot know the session)."""
    usage = (
        'select_frames needs {"arguments": {"video": <optional number>, "indices": [0, 3]}} '
        'or {"arguments": {"video": <optional number>, "times": [1.5]}}'
    )
    if not isinstance(arguments, dict):
        raise ToolArgumentError(usage + ".")
    unknown = sorted(set(arguments) - {"video", "indices", "times"})
    if unknown:
        raise ToolArgumentError(f"unknown argument(s) {unknown}; {usage}.")
    video = arguments.get("video", 1)
    if not _is_count(video):
        raise ToolArgumentError(f"video must be a video number (1, 2, ...), got {video!r}; {usage}.")
    given = [key for key in ("indices", "times") if key in arguments]
    if len(given) != 1:
        raise ToolArgumentError(f"give exactly one of indices or times; {usage}.")
    key = given[0]
    values = arguments[key]
    if not isinstance(values, list) or not values:
        raise ToolArgumentError(f"{key} must be a non-empty list; {usage}.")
    if len(values) > MAX_SELECTED_FRAMES:
        raise ToolArgumentError(f"at most {MAX_SELECTED_FRAMES} frames per call, got {len(values)}.")
    if key == "indices":
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_PIXEL_COORDINATE for v in values):
            raise ToolArgumentError(f"indices must be frame positions 0, 1, 2, ... (whole numbers); {usage}.")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_FRAME_TIME_S for v in values):
        raise ToolArgumentError(f"times must be seconds from the start of the video (numbers from 0); {usage}.")
    return json.dumps({"video": video, key: list(dict.fromkeys(float(v) if key == "times" else v for v in values))})


SEARCH_CALL = ToolCall("search", _search_query)
IMAGE_SEARCH_CALL = ToolCall("image_search", _no_arguments)

CODE = ToolSpec("code", ("code_execution",), None)
SEARCH = ToolSpec("search", ("text_search",), SEARCH_CALL)
IMAGE_SEARCH = ToolSpec("image_search", (), IMAGE_SEARCH_CALL)
IMAGE_ZOOM_IN = ToolSpec("image_zoom_in_tool", ("zoom_in",), ToolCall("image_zoom_in_tool", _zoom_box))
SELECT_FRAMES = ToolSpec("select_frames", ("frames",), ToolCall("select_frames", _frame_choice))

TOOL_SPECS: tuple[ToolSpec, ...] = (CODE, SEARCH, IMAGE_SEARCH, IMAGE_ZOOM_IN, SELECT_FRAMES)
#: Names of the tools (the action kinds that run a tool), in order.
TOOL_NAMES: tuple[ToolName, ...] = tuple(spec.name for spec in TOOL_SPECS)
#: Keys of a trajectory's ``tool_calls`` and of the reward's ``tool_stats``.
STAT_KEYS: tuple[str, ...] = (*TOOL_NAMES, *COUNTER_KEYS)
#: The ``"name"`` values a ``<tool_call>`` may carry.
CALL_NAMES: tuple[str, ...] = tuple(spec.call.name for spec in TOOL_SPECS if spec.call)


def index_names(specs: Iterable[ToolSpec]) -> dict[str, ToolSpec]:
    """Every accepted name (name, alias, call name) → its spec.

    Raises ValueError when two tools share a name or one takes a reserved name, so a
    user's or the model's name always means one tool.
    """
    index: dict[str, ToolSpec] = {}
    for spec in specs:
        names = set(spec.accepted_names())
        reserved = sorted(names & set(RESERVED_NAMES))
        if reserved:
            raise ValueError(f"tool {spec.name!r}: {reserved} are reserved names")
        taken = sorted(n for n in names if n in index)
        if taken:
            raise ValueError(f"tool {spec.name!r}: name(s) {taken} already taken by {sorted({index[n].name for n in taken})}")
        index.update(dict.fromkeys(names, spec))
    return index


_BY_NAME = index_names(TOOL_SPECS)
_BY_CALL_NAME: dict[str, tuple[ToolName, ToolCall]] = {spec.call.name: (spec.name, spec.call) for spec in TOOL_SPECS if spec.call}


def spec(name: str) -> ToolSpec:
    """The tool called ``name`` or one of its aliases; ValueError naming the accepted names."""
    found = _BY_NAME.get(name)
    if found is None:
        raise ValueError(f"unknown tool {name!r}; known: {accepted_names()}")
    return found


def resolve(names: Iterable[str]) -> list[ToolName]:
    """Tool names for user-given names (aliases accepted), order kept, no duplicates."""
    resolved: list[ToolName] = []
    for name in names:
        canonical = spec(name).name
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


def accepted_names() -> list[str]:
    """Every name a user may give a tool by, sorted."""
    return sorted(_BY_NAME)


def read_call(call_name: str, arguments: Any) -> tuple[ToolName, str] | None:
    """The action kind and canonical content of a ``<tool_call>`` naming ``call_name``.

    None when no tool is called so; ToolArgumentError (worded for the model) when the
    arguments are wrong.
    """
    found = _BY_CALL_NAME.get(call_name)
    if found is None:
        return None
    name, call = found
    return name, call.parse_arguments(arguments)
