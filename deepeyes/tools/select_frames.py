"""The frame-selection tool: look again at chosen frames of a question's video.

The model writes ``{"name": "select_frames", "arguments": {"video": 1, "indices": [0, 3]}}``
(positions in the sampled frames, from 0, as ``video_1_frames[i]`` in the code tool's kernel)
or ``{"arguments": {"video": 1, "times": [1.5]}}`` (seconds; the sampled frame whose timestamp
is nearest, the earlier on a tie). ``video`` defaults to 1.

Why a tool beside the video itself: the policy sees a video as frames at the video
resolution, two frames to a temporal patch; a frame asked for here comes back as an image at
the image limits, through the manager's observation path (``tools.max_images_per_round``,
``tools.max_image_pixels`` and the token budget apply), and gets an image number after the
question's images (:func:`deepeyes.tools.base.viewable_images`), so ``image_zoom_in_tool``
with ``"image": n`` crops that frame. A frame shown twice keeps its first number.

A video, index or time that does not exist is an error observation naming what does; the
spec (:data:`deepeyes.tool_specs.SELECT_FRAMES`) has already refused malformed arguments.
"""

from __future__ import annotations

import json

from deepeyes import wire
from deepeyes.tool_specs import SELECT_FRAMES
from deepeyes.tools.base import (
    BaseTool,
    ToolOutput,
    ToolSession,
    error_output,
    shown_frames,
)
from deepeyes.tools.budget import Clip
from deepeyes.videos import VideoClip


def nearest_frame(clip: VideoClip, seconds: float) -> int:
    """The index of the frame of ``clip`` whose timestamp is nearest ``seconds`` (the earlier on a tie)."""
    return min(range(len(clip.timestamps)), key=lambda i: (abs(clip.timestamps[i] - seconds), i))


def clip_end(clip: VideoClip) -> float:
    """Where ``clip``'s last sampled frame stops being shown, in seconds: its timestamp plus one
    sampling interval. A time past it is no time of the video."""
    return clip.timestamps[-1] + 1.0 / clip.sampled_fps


class SelectFramesTool(BaseTool):
    spec = SELECT_FRAMES

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        call = json.loads(content)
        if not session.videos:
            return error_output(self.spec.name, "this question has no video to select frames from")
        video = call["video"]
        if video > len(session.videos):
            return error_output(self.spec.name, f"video {video} does not exist: this question has {len(session.videos)} video(s)")
        clip = session.videos[video - 1]
        count = len(clip.frames)
        if "indices" in call:
            outside = [i for i in call["indices"] if i >= count]
            if outside:
                return error_output(
                    self.spec.name, f"frame indices {outside} are out of range: video {video} has {count} frames, indices 0 to {count - 1}"
                )
            indices = list(call["indices"])
        else:
            end = clip_end(clip)
            late = [t for t in call["times"] if t > end]
            if late:
                return error_output(
                    self.spec.name,
                    f"times {late} are past the end of video {video}: its {count} frames span "
                    f"{clip.timestamps[0]:.2f} to {clip.timestamps[-1]:.2f} s",
                )
            indices = list(dict.fromkeys(nearest_frame(clip, t) for t in call["times"]))
        shown = shown_frames(session)
        for index in indices:
            shown.setdefault((video, index), clip.frames[index])
        order = list(shown)
        numbers = [len(session.images) + order.index((video, index)) + 1 for index in indices]

        def render(kept: list[int], notes: list[str], _clip: Clip) -> str:
            lines = []
            for position in kept:
                index = indices[position]
                lines.append(
                    f"Frame {index} of video {video} at {clip.timestamps[index]:.2f} s "
                    f"(video_{video}_frames[{index}] in code), now image {numbers[position]}:"
                )
                lines.append(wire.IMAGE_PLACEHOLDER)
            lines += [wire.note(n) for n in notes]
            return wire.tool_response("\n".join(lines))

        return ToolOutput("success", render, [clip.frames[index] for index in indices])
