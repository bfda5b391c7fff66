"""DeepEyes v1's ``image_zoom_in_tool``: crop the original image to a box and look again.

The model writes ``{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [x1, y1, x2, y2],
"label": "…"}}`` with the box in pixels of the original (first) image, as DeepEyes v1 data
and checkpoints do (Qwen2.5-VL's absolute coordinates); ``label`` is optional. The crop
comes back as the observation's image, so v1 trajectories run through the same loop.
"""

from __future__ import annotations

import json
from typing import Any

from deepeyes import wire
from deepeyes.tools.base import BaseTool, ToolOutput, ToolSession, error_output
from deepeyes.tools.registry import ToolArgumentError


class ImageZoomInTool(BaseTool):
    name = "image_zoom_in_tool"
    call_name = "image_zoom_in_tool"
    aliases = ("zoom_in",)

    @classmethod
    def parse_arguments(cls, arguments: Any) -> str:
        usage = 'image_zoom_in_tool needs {"arguments": {"bbox_2d": [x1, y1, x2, y2], "label": "<optional>"}}'
        if not isinstance(arguments, dict) or "bbox_2d" not in arguments:
            raise ToolArgumentError(usage + ".")
        box = arguments["bbox_2d"]
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        ):
            raise ToolArgumentError(f"bbox_2d must be four numbers [x1, y1, x2, y2]; {usage}.")
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        if x2 <= x1 or y2 <= y1:
            raise ToolArgumentError(f"bbox_2d [{x1}, {y1}, {x2}, {y2}] is empty: x2 must exceed x1 and y2 exceed y1.")
        label = arguments.get("label")
        if label is not None and not isinstance(label, str):
            raise ToolArgumentError("label must be a string.")
        unknown = sorted(set(arguments) - {"bbox_2d", "label"})
        if unknown:
            raise ToolArgumentError(f"unknown argument(s) {unknown}; {usage}.")
        return json.dumps({"bbox_2d": [x1, y1, x2, y2], "label": (label or "").strip()})

    def execute(self, session: ToolSession, content: str) -> ToolOutput:
        if not session.images:
            return error_output(self.name, "this question has no image to zoom into")
        call = json.loads(content)
        image = session.images[0]
        x1, y1, x2, y2 = call["bbox_2d"]
        left, top, right, bottom = max(0, x1), max(0, y1), min(image.width, x2), min(image.height, y2)
        if right <= left or bottom <= top:
            return error_output(
                self.name, f"bbox_2d {call['bbox_2d']} lies outside the image, which is {image.width}x{image.height} pixels"
            )
        crop = image.crop((left, top, right, bottom))
        what = f" on {call['label']}" if call["label"] else ""

        def render(kept: list[int], notes: list[str]) -> str:
            lines = [f"Zoomed in{what}: region [{left}, {top}, {right}, {bottom}] of image 1."]
            lines += [wire.IMAGE_PLACEHOLDER] * len(kept) + [wire.note(n) for n in notes]
            return wire.tool_response("\n".join(lines))

        return ToolOutput("success", render, [crop])
