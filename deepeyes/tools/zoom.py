"""DeepEyes v1's ``image_zoom_in_tool``: crop the original image to a box and look again.

The model writes ``{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2],
"label": "…"}}`` with the box in pixels of the original (first) image, as DeepEyes v1 data
and checkpoints do (Qwen2.5-VL's absolute coordinates); ``label`` is optional. The crop
comes back as the observation's image, so v1 trajectories run through the same loop.
"""

from __future__ import annotations

import json

from deepeyes import wire
from deepeyes.tool_specs import IMAGE_ZOOM_IN
from deepeyes.tools.base import BaseTool, ToolOutput, ToolSession, error_output
from deepeyes.tools.budget import Clip


class ImageZoomInTool(BaseTool):
    spec = IMAGE_ZOOM_IN

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        if not session.images:
            return error_output(self.spec.name, "this question has no image to zoom into")
        call = json.loads(content)
        image = session.images[0]
        x1, y1, x2, y2 = call["bbox_2d"]
        left, top, right, bottom = max(0, x1), max(0, y1), min(image.width, x2), min(image.height, y2)
        if right <= left or bottom <= top:
            return error_output(
                self.spec.name, f"bbox_2d {call['bbox_2d']} lies outside the image, which is {image.width}x{image.height} pixels"
            )
        crop = image.crop((left, top, right, bottom))
        what = f" on {call['label']}" if call["label"] else ""

        def render(kept: list[int], notes: list[str], _clip: Clip) -> str:
            lines = [f"Zoomed in{what}: region [{left}, {top}, {right}, {bottom}] of image 1."]
            lines += [wire.IMAGE_PLACEHOLDER] * len(kept) + [wire.note(n) for n in notes]
            return wire.tool_response("\n".join(lines))

        return ToolOutput("success", render, [crop])
