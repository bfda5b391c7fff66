"""What every tool shares: the per-manager context, the per-trajectory session, the result.

A tool never raises for a failure the model could react to: it returns an observation in
the wire shape (DESIGN §4), which the manager hands to the agent loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from deepeyes import wire
from deepeyes.trajectory import Observation, ObservationStatus

#: Renders an observation's text from the indices of the images that reach the model and
#: the notes to add (see :func:`deepeyes.tools.image_limits.fit_images`).
Renderer = Callable[[list[int], list[str]], str]


@dataclass
class ToolOutput:
    """What a tool's ``execute`` returns: status, images, and how to render the text.

    The text is rendered by the manager once the images are brought within the model's
    limits, so the observation always names exactly the images the model receives.
    """

    status: ObservationStatus
    render: Renderer
    images: list[Image.Image] = field(default_factory=list)


@dataclass
class ToolResult:
    """What one call gives back: the observation record and the images that go with it."""

    observation: Observation
    images: list[Image.Image] = field(default_factory=list)


def response_renderer(body: str) -> Renderer:
    """A ``<tool_response>`` renderer for a body without images (notes appended as lines)."""
    return lambda _kept, notes: wire.tool_response("\n".join([body, *(wire.note(n) for n in notes)]))


@dataclass
class ToolSession:
    """One trajectory's tool state; ``state`` holds each tool's own per-session data by tool name."""

    session_id: str
    images: list[Image.Image]
    sample_index: str | None = None
    disabled: set[str] = field(default_factory=set)
    calls: int = 0
    seen_calls: set[tuple[str, str]] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # tools whose ``open`` ran for this session


@dataclass
class ToolContext:
    """What the manager gives each tool when it starts it.

    ``config`` is the whole ``ToolManagerConfig``; ``redis`` the shared state store;
    ``stack`` closes whatever services a tool starts when the manager closes.
    """

    config: Any
    redis: Any
    stack: contextlib.ExitStack


def error_result(kind: str, message: str, status: ObservationStatus = "error") -> ToolResult:
    """A tool error in the search-response shape (``Error (kind): message``)."""
    return ToolResult(Observation(text=wire.error_response(kind, message), image_count=0, status=status, latency_s=0.0))


def error_output(kind: str, message: str, status: ObservationStatus = "error") -> ToolOutput:
    """:func:`error_result` as a tool's return value."""
    return ToolOutput(status, lambda _kept, _notes: wire.error_response(kind, message))


class BaseTool:
    """Defaults for the life-cycle hooks a tool does not need."""

    aliases: tuple[str, ...] = ()
    call_name: str | None = None

    def __init__(self, context: ToolContext):
        self.context = context

    def open(self, session: ToolSession) -> None:
        """Prepare per-session state before the session's first call of this tool."""

    def close(self, session: ToolSession) -> None:
        """Free what ``open``/``execute`` held for ``session``; called once per opened session."""

    def shutdown(self) -> None:
        """Release manager-level resources (services are also closed through ``context.stack``)."""
