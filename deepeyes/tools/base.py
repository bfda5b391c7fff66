"""What every tool runtime shares: the per-manager context, the per-trajectory session, the result.

A tool never raises for a failure the model could react to: it returns an observation in
the wire shape (DESIGN §4), which the manager hands to the agent loop. What the record and
the grammar know about a tool (its names, arguments, counters) is its spec in
:mod:`deepeyes.tool_specs`; a runtime names that spec and adds the life cycle.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PIL import Image

from deepeyes import wire
from deepeyes.tool_specs import ObservationStatus, ToolSpec
from deepeyes.tools.budget import Clip
from deepeyes.trajectory import Observation
from deepeyes.videos import VideoClip

#: Renders an observation's text from the indices of the images that reach the model, the
#: notes to add and the clip to apply to each long text field (stdout, stderr, a result
#: body): the manager fits the images and the whole observation into the context
#: (:meth:`deepeyes.tool_manager.ToolManager._observe`, :mod:`deepeyes.tools.budget`).
Renderer = Callable[[list[int], list[str], Clip], str]


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
    #: The tokens the observation takes in the next prompt, when it was fitted to a budget.
    tokens: int | None = None


def response_renderer(body: str) -> Renderer:
    """A ``<tool_response>`` renderer for a body without images (notes appended as lines)."""
    return lambda _kept, notes, clip: wire.tool_response("\n".join([clip(body), *(wire.note(n) for n in notes)]))


@dataclass
class ToolSession:
    """One trajectory's tool state; ``state`` holds each tool's own per-session data by tool name."""

    session_id: str
    images: list[Image.Image]
    sample_index: str | None = None
    #: The request's videos, decoded once by the loop (:mod:`deepeyes.videos`).
    videos: list[VideoClip] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)
    calls: int = 0
    seen_calls: set[tuple[str, str]] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)  # tools whose ``open`` ran for this session


#: ``ToolSession.state`` key of the video frames ``select_frames`` has shown: ``{(video, frame
#: index): frame}`` in the order shown (videos from 1, frames from 0).
SHOWN_FRAMES = "select_frames"


def shown_frames(session: ToolSession) -> dict[tuple[int, int], Image.Image]:
    """The session's shown frames (:data:`SHOWN_FRAMES`), created empty on first use."""
    return session.state.setdefault(SHOWN_FRAMES, {})


def viewable_images(session: ToolSession) -> list[Image.Image]:
    """The images a tool call names by number (``image`` 1, 2, …): the question's images, then
    each frame ``select_frames`` showed, numbered on from there in the order it showed them."""
    return [*session.images, *shown_frames(session).values()]


@dataclass
class ToolContext:
    """What the manager gives each tool when it starts it.

    ``config`` is the whole ``ToolManagerConfig``; ``redis`` the shared state store;
    ``stack`` closes whatever services a tool starts when the manager closes.
    """

    config: Any
    redis: Any
    stack: contextlib.ExitStack


def error_output(kind: str, message: str, status: ObservationStatus = "error") -> ToolOutput:
    """A tool error in the search-response shape (``Error (kind): message``), notes after it."""
    return ToolOutput(status, lambda _kept, notes, clip: wire.error_response(kind, "\n".join([clip(message), *map(wire.note, notes)])))


class BaseTool(abc.ABC):
    """One tool's runtime, started by the tool manager with its :class:`ToolContext`.

    ``open`` runs before a session's first call, ``execute`` per call, ``close`` when the
    trajectory ends, ``shutdown`` when the manager closes; every hook but ``execute`` does
    nothing unless a tool needs it.
    """

    #: The tool this runtime runs (its name is the action kind it executes).
    spec: ClassVar[ToolSpec]

    def __init__(self, context: ToolContext):
        self.context = context

    @abc.abstractmethod
    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        """Run one call; ``content`` is the call's canonical content (see :data:`deepeyes.tool_specs.ArgumentParser`)."""

    def open(self, session: ToolSession) -> None:
        """Prepare per-session state before the session's first call of this tool."""

    def close(self, session: ToolSession) -> None:
        """Free what ``open``/``execute`` held for ``session``; called once per opened session."""

    def shutdown(self) -> None:
        """Release manager-level resources (services are also closed through ``context.stack``)."""
