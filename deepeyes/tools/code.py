"""The code tool: a ``<code>`` block runs in the session's Jupyter kernel (DESIGN §4, §8).

The kernel is opened on the session's first code call with the input images preloaded as
``image_1 … image_N`` and freed when the trajectory ends (:meth:`CodeTool.close`), so a
finished rollout never keeps a kernel alive.

A session with videos also gets, for video ``k``, ``video_k_frames`` (the sampled frames as PIL
images, in time order: the frames the model saw) and ``video_k_times`` (each frame's time in
seconds). The frames travel in the session's open after its images, as the images do, and one
setup cell gathers them into those lists (:func:`video_preload`); a session without videos
sends and runs nothing more than before.

``image_i`` holds the file's pixels. When ``tools.frame_max_pixels`` names the processor's
limits, the kernel also gets ``frame_scales`` and ``to_image_pixels(box, i=1)`` /
``to_model_pixels(box, i=1)``, so code handed a box in the frame the model sees (a grounding
answer, a zoom box) crops the same region the reward and the zoom tool mean; the scales
come from :class:`deepeyes.images.ImageFrame`, the one conversion.
"""

from __future__ import annotations

import logging

from deepeyes import wire
from deepeyes.images import load_image, to_png_bytes
from deepeyes.tool_specs import CODE
from deepeyes.tools.base import BaseTool, ToolContext, ToolOutput, ToolSession
from deepeyes.tools.budget import Clip
from deepeyes.tools.zoom import model_frame

logger = logging.getLogger(__name__)


class CodeTool(BaseTool):
    spec = CODE

    def __init__(self, context: ToolContext):
        super().__init__(context)
        from deepeyes.sandbox.client import SandboxClient
        from deepeyes.sandbox.launch import SandboxCluster

        sandbox = context.config.sandbox
        if sandbox.ports:
            self.client = SandboxClient(sandbox.ports, host=sandbox.host)
        else:
            cluster = context.stack.enter_context(SandboxCluster(sandbox, num_instances=1))
            self.client = cluster.client()
        context.stack.callback(self.client.close)

    def open(self, session: ToolSession) -> None:
        """Open the session's kernel with its images and video frames, then run its setup cell.

        Raises:
            RuntimeError: the setup cell failed (the manager tells the model; the next code
                call opens the session again).
        """
        frames = [frame for clip in session.videos for frame in clip.frames]
        self.client.open_session(session.session_id, [to_png_bytes(image) for image in [*session.images, *frames]])
        setup = []
        if session.images and getattr(self.context.config.tools, "frame_max_pixels", None) is not None:
            setup.append(frame_helpers(session, self.context.config.tools))
        if session.videos:
            setup.append(video_preload(session))
        if setup:
            run = self.client.execute(session.session_id, "\n".join(setup))
            if run.status != "success":
                raise RuntimeError(f"the session's images and frames could not be prepared: {run.status}: {run.stderr.strip()[-500:]}")

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        run = self.client.execute(session.session_id, content, timeout=self.context.config.sandbox.default_timeout_s)
        images = [load_image(png) for png in run.images]
        sandbox_notes = [f"sandbox: {note}" for note in run.notes]
        stdout = run.stdout
        if run.result and run.result not in stdout:
            stdout = f"{stdout}{run.result}" if not stdout or stdout.endswith("\n") else f"{stdout}\n{run.result}"
        status = run.status if run.status in ("success", "error", "timeout", "denied") else "error"

        def render(kept: list[int], notes: list[str], clip: Clip) -> str:
            lines = [clip(run.stderr).rstrip("\n")] if run.stderr.strip() else []
            lines += [wire.note(n) for n in [*sandbox_notes, *notes]]
            return wire.code_observation(clip(stdout), "\n".join(lines), len(kept))

        return ToolOutput(status, render, images)  # type: ignore[arg-type]

    def close(self, session: ToolSession) -> None:
        self.client.close_session(session.session_id)


def frame_helpers(session: ToolSession, tools_config: object) -> str:
    """Kernel code defining ``frame_scales`` (processed pixels per file pixel, per image) and the
    two box conversions, from each input image's :func:`~deepeyes.tools.zoom.model_frame`."""
    scales = {i: model_frame(image, tools_config).scale for i, image in enumerate(session.images, start=1)}
    return "\n".join(
        [
            f"frame_scales = {scales!r}",
            "def to_image_pixels(box, i=1):",
            "    sx, sy = frame_scales[i]",
            "    return [box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy]",
            "def to_model_pixels(box, i=1):",
            "    sx, sy = frame_scales[i]",
            "    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]",
        ]
    )


def video_preload(session: ToolSession) -> str:
    """Kernel code turning the frames sent after the session's images (``image_{N+1}`` on) into
    ``video_k_frames`` and ``video_k_times`` per video, and removing those image names, so
    ``image_i`` stays the question's images."""
    lines = []
    first = len(session.images) + 1
    for number, clip in enumerate(session.videos, start=1):
        names = [f"image_{first + i}" for i in range(len(clip.frames))]
        first += len(clip.frames)
        lines += [
            f"video_{number}_frames = [{', '.join(names)}]",
            f"video_{number}_times = {[float(t) for t in clip.timestamps]!r}",
            f"del {', '.join(names)}",
        ]
    return "\n".join(lines)
