"""DeepEyes v1's ``image_zoom_in_tool``: crop the original image to a box and look again.

The model writes ``{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2],
"label": "…", "image": n}}`` with the box in absolute pixels of image ``n`` (default 1: the
first image, as in v1; a number past the question's images names a video frame
``select_frames`` showed, :func:`deepeyes.tools.base.viewable_images`) *as the model saw it*
(Qwen2.5-VL's coordinates; DeepEyes v1's note: the processed image, after ``max_pixels``
resizing, not the file). With ``tools.frame_max_pixels`` set to the processor's limits the
box is read in that frame and converted to the file's pixels by
:class:`deepeyes.images.ImageFrame` (the conversion the grounding reward uses, so a box the
model answers with and a zoom it asks for mean the same region); unset, the two frames are
the same. ``label`` is optional. The crop comes back as the observation's image, so v1
trajectories run through the same loop.
"""

from __future__ import annotations

import json
import math

from PIL import Image

from deepeyes import wire
from deepeyes.images import QWEN_DEFAULT_MIN_PIXELS, ImageFrame
from deepeyes.tool_specs import IMAGE_ZOOM_IN
from deepeyes.tools.base import (
    BaseTool,
    ToolOutput,
    ToolSession,
    error_output,
    viewable_images,
)
from deepeyes.tools.budget import Clip


def model_frame(image: Image.Image, tools_config: object) -> ImageFrame:
    """The frame the model saw ``image`` in, from ``tools.frame_min_pixels`` / ``frame_max_pixels``."""
    max_pixels = getattr(tools_config, "frame_max_pixels", None)
    if max_pixels is None:
        return ImageFrame.identity(image.size)
    min_pixels = getattr(tools_config, "frame_min_pixels", None) or QWEN_DEFAULT_MIN_PIXELS
    return ImageFrame.for_qwen(image.size, min_pixels, max_pixels)


class ImageZoomInTool(BaseTool):
    spec = IMAGE_ZOOM_IN

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        images = viewable_images(session)
        if not images:
            return error_output(self.spec.name, "this question has no image to zoom into")
        call = json.loads(content)
        number = call.get("image", 1)
        if number > len(images):
            return error_output(self.spec.name, f"image {number} does not exist: there are {len(images)} image(s) to zoom into")
        image = images[number - 1]
        frame = model_frame(image, self.context.config.tools)
        seen_width, seen_height = frame.processed
        x1, y1, x2, y2 = call["bbox_2d"]
        left, top, right, bottom = max(0, x1), max(0, y1), min(seen_width, x2), min(seen_height, y2)
        if right <= left or bottom <= top:
            return error_output(
                self.spec.name, f"bbox_2d {call['bbox_2d']} lies outside image {number}, which is {seen_width}x{seen_height} pixels"
            )
        ox1, oy1, ox2, oy2 = frame.to_original((left, top, right, bottom))
        # Outward to whole pixels, so the crop holds all of the region asked for.
        crop_box = (math.floor(ox1), math.floor(oy1), min(image.width, math.ceil(ox2)), min(image.height, math.ceil(oy2)))
        crop = image.crop(crop_box)
        what = f" on {call['label']}" if call["label"] else ""

        def render(kept: list[int], notes: list[str], _clip: Clip) -> str:
            lines = [f"Zoomed in{what}: region [{left}, {top}, {right}, {bottom}] of image {number}."]
            lines += [wire.IMAGE_PLACEHOLDER] * len(kept) + [wire.note(n) for n in notes]
            return wire.tool_response("\n".join(lines))

        return ToolOutput("success", render, [crop])
