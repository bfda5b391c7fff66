"""One chat question through the shared agent loop, streamed turn by turn and stoppable.

Why a module of its own: the Gradio handlers only move values between widgets; what a
run does — checking the uploads (images, and videos decoded into their sampled frames),
turning the page's settings into the agent request (tool switches, sampling, turn limit,
video sampling, a cancel event), recording the images each tool returned (the frames a
frame tool selected among them) and finishing a stopped run — is here, testable without a browser. The shared
policy and tool manager are used as they are: every per-question setting travels on the
:class:`~deepeyes.agent.AgentRequest`.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from qwen_vl_utils import smart_resize

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, RunCancelled
from deepeyes.demo.render import (
    STOPPED_BY_USER,
    TrajectoryMedia,
    render_trajectory,
    thumbnail_url,
)
from deepeyes.demo.tools import tool_names
from deepeyes.images import QWEN_FACTOR, ImageLoadError, load_image, to_data_url
from deepeyes.policies.base import Policy, SamplingParams
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import Trajectory, Turn
from deepeyes.videos import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    VideoClip,
    VideoLoadError,
    VideoSampling,
    load_video,
)

logger = logging.getLogger(__name__)

#: Qwen2.5-VL's default processor limit (16384 patches of 28×28 px): larger uploads are resized.
QWEN_MAX_PIXELS = 16384 * 28 * 28
#: Longest side of the frame thumbnails the page shows for an uploaded video (px).
FRAME_THUMBNAIL_SIDE = 96


class InputError(ValueError):
    """Bad user input, worded for the page."""


@dataclass
class PreparedInput:
    question: str
    images: list[Image.Image]
    names: list[str]
    notes: list[str] = field(default_factory=list)  # shown on the page (resizes)
    #: The uploaded videos, decoded into the frames the model and the tools see.
    videos: list[VideoClip] = field(default_factory=list)


def prepare_input(
    paths: list[str] | None,
    question: str | None,
    max_pixels: int = QWEN_MAX_PIXELS,
    model_max_pixels: int | None = None,
    video_paths: list[str] | None = None,
    video_sampling: VideoSampling | None = None,
) -> PreparedInput:
    """Check and decode the uploads and the question.

    Args:
        paths: uploaded files (any type; each must decode as an image).
        video_paths: uploaded videos (any type; each must decode as a video with PyAV),
            sampled by ``video_sampling`` (:func:`deepeyes.videos.load_video`).
        question: the user's text; must not be blank.
        max_pixels: images with more pixels (width × height) are resized, aspect kept, to
            the nearest Qwen grid size within it (sides multiples of 28, ``qwen_vl_utils.smart_resize``).
        model_max_pixels: the model's own input limit, when smaller: noted, not applied
            (the policy resizes what the model sees; the sandbox keeps the upload).

    Raises:
        InputError: empty question, a file that is not an image, a corrupt image, an image
            too large to decode safely, a file that is not a decodable video.
    """
    question = (question or "").strip()
    if not question:
        raise InputError("Please type a question.")
    images, names, notes = [], [], []
    for path in paths or []:
        name = Path(path).name
        try:
            image = load_image(path)
        except Image.DecompressionBombError:
            raise InputError(f"“{name}” is too large to open safely; please upload a smaller image.") from None
        except ImageLoadError:
            raise InputError(f"“{name}” is not an image this demo can read (or the file is damaged). Please upload a PNG, JPEG, WebP, GIF or BMP image.") from None
        width, height = image.size
        if width * height > max_pixels:
            new_height, new_width = smart_resize(height, width, QWEN_FACTOR, min_pixels=QWEN_FACTOR**2, max_pixels=max_pixels)
            image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
            notes.append(f"“{name}” ({width}×{height}) is larger than the model's limit of {max_pixels:,} pixels; it was resized to {new_width}×{new_height}.")
        elif model_max_pixels and width * height > model_max_pixels:
            notes.append(f"“{name}” ({width}×{height}): the model sees it downscaled to its limit of {model_max_pixels:,} pixels; code runs on the full image.")
        images.append(image)
        names.append(name)
    videos = []
    for path in video_paths or []:
        try:
            videos.append(load_video(path, video_sampling))
        except VideoLoadError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            raise InputError(f"“{Path(path).name}” is not a video this demo can read ({reason}). Please upload an MP4, WebM, MOV or AVI video.") from None
    return PreparedInput(question, images, names, notes, videos)


@dataclass
class RunSettings:
    """The page's controls for one question."""

    enabled_tools: list[str] = field(default_factory=lambda: list(tool_names()))
    #: The seed's force_no_tool, as everywhere: no tools, one direct answer under the no-tool prompt.
    force_no_tool: bool = False
    max_turns: int = 8
    temperature: float = 0.0
    max_new_tokens: int = 512
    #: Frames kept per second of each uploaded video, and at most this many per video.
    video_fps: float = DEFAULT_FPS
    video_max_frames: int = DEFAULT_MAX_FRAMES

    def video_sampling(self) -> VideoSampling:
        """How this question's videos are sampled; raises ``ValueError`` for fps <= 0 or fewer than one frame."""
        return VideoSampling(fps=float(self.video_fps), max_frames=int(self.video_max_frames))

    def request(self, prepared: PreparedInput, cancel: threading.Event) -> AgentRequest:
        """The agent request of one question with these settings; ``cancel`` stops it between steps."""
        return AgentRequest(
            question=prepared.question,
            images=list(prepared.images),
            videos=list(prepared.videos),
            video_sampling=self.video_sampling(),
            id=f"demo-{uuid.uuid4().hex[:10]}",
            data_source="demo",
            disabled_tools=set(tool_names()) - set(self.enabled_tools),
            force_no_tool=self.force_no_tool,
            sampling=SamplingParams(temperature=float(self.temperature), max_new_tokens=int(self.max_new_tokens)),
            max_turns=max(1, int(self.max_turns)),
            cancel=cancel,
        )


@dataclass
class RunUpdate:
    """What the page shows after each step: the rendered trajectory so far."""

    html: str
    trajectory: Trajectory | None
    done: bool
    error: str | None = None


class ChatRun:
    """One question on a worker thread; :meth:`updates` yields after every turn.

    :meth:`stop` sets the request's cancel event: the loop ends the trajectory at the next
    turn boundary (a generation or tool call in flight finishes first) and frees the
    sandbox session in its ``finally``.
    """

    def __init__(self, policy: Policy, tool_manager: ToolManager | None, prepared: PreparedInput, settings: RunSettings):
        self.stop_event = threading.Event()
        self.settings = settings
        self.policy = policy
        self.loop = AgentLoop(tool_manager, AgentConfig(use_tools=tool_manager is not None))
        self.request = settings.request(prepared, self.stop_event)
        self.request.metadata.update(
            {"image_names": prepared.names, "settings": dataclasses.asdict(settings), "policy": type(policy).__name__}
        )
        self.media = TrajectoryMedia(
            inputs=[thumbnail_url(image, 512) for image in prepared.images],
            videos=[[thumbnail_url(frame, FRAME_THUMBNAIL_SIDE) for frame in clip.frames] for clip in prepared.videos],
        )
        self._videos = [clip.describe() for clip in prepared.videos]
        self.trajectory: Trajectory | None = None
        self._events: queue.Queue[RunUpdate] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="demo-run", daemon=True)

    def stop(self) -> None:
        self.stop_event.set()

    def _on_turn(self, trajectory: Trajectory, turn: Turn, images: list[Image.Image]) -> None:
        self.trajectory = trajectory
        if turn.observation is not None:
            self.media.observations[turn.index] = [to_data_url(image) for image in images]
        self.media.store(trajectory)
        self._events.put(RunUpdate(render_trajectory(trajectory, running=True), trajectory, done=False))

    def _work(self) -> None:
        started = time.perf_counter()
        error = None
        try:
            self.trajectory = self.loop.rollout(self.policy, self.request, on_turn=self._on_turn).trajectory
        except RunCancelled as cancelled:
            self.trajectory = cancelled.trajectory
            self._finish_stopped(STOPPED_BY_USER, started)
        except Exception as exc:  # the model backend failed: tell the page, keep the app up
            logger.exception("demo run %s failed", self.request.id)
            error = f"The model backend failed: {type(exc).__name__}: {exc}"
            self._finish_stopped(error, started)
        trajectory = self.trajectory
        if trajectory is not None:
            self.media.store(trajectory)
        html = render_trajectory(trajectory) if trajectory is not None else ""
        self._events.put(RunUpdate(html, trajectory, done=True, error=error))

    def _finish_stopped(self, reason: str, started: float) -> None:
        if self.trajectory is None:
            self.trajectory = Trajectory(
                id=self.request.id or "", question=self.request.question, images=["<in-memory>"] * len(self.request.images),
                data_source="demo", metadata=dict(self.request.metadata), videos=list(self._videos),
            )
        self.trajectory.stop_reason = "error"
        self.trajectory.metadata["error"] = reason
        self.trajectory.timing.setdefault("total_s", time.perf_counter() - started)

    def updates(self, poll_s: float = 0.25) -> Iterator[RunUpdate]:
        """Start the run and yield each update until the final one (``done=True``)."""
        self._thread.start()
        while True:
            try:
                update = self._events.get(timeout=poll_s)
            except queue.Empty:
                continue
            yield update
            if update.done:
                return


class ChatSessions:
    """The run in flight for each browser session, so Stop and page close can end it."""

    def __init__(self) -> None:
        self._runs: dict[str, ChatRun] = {}
        self._lock = threading.Lock()

    def start(self, session_id: str, run: ChatRun) -> None:
        with self._lock:
            previous = self._runs.get(session_id)
            self._runs[session_id] = run
        if previous is not None:
            previous.stop()

    def finish(self, session_id: str, run: ChatRun) -> None:
        with self._lock:
            if self._runs.get(session_id) is run:
                del self._runs[session_id]

    def stop(self, session_id: str) -> bool:
        """Stop this session's run; False when it has none."""
        with self._lock:
            run = self._runs.get(session_id)
        if run is None:
            return False
        run.stop()
        return True

    def __len__(self) -> int:
        return len(self._runs)
