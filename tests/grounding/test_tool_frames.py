"""The zoom tool and the code tool read boxes in the frame the model sees, as the reward does."""

from __future__ import annotations

import contextlib

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.images import ImageFrame
from deepeyes.rewards import score_response
from deepeyes.tool_manager import ToolManagerConfig, ToolsConfig
from deepeyes.tools.base import ToolContext, ToolSession
from deepeyes.tools.code import frame_helpers
from deepeyes.tools.zoom import ImageZoomInTool

# 640×480: left half red, right half blue. At the tiny model's budget the model sees 252×168.
IMAGE = Image.new("RGB", (640, 480), (255, 0, 0))
IMAGE.paste((0, 0, 255), (320, 0, 640, 480))
LIMITS = {"frame_min_pixels": 56 * 56, "frame_max_pixels": 224 * 224}


def zoom_tool(**tools: int) -> ImageZoomInTool:
    config = ToolManagerConfig(tools=ToolsConfig(**tools))
    return ImageZoomInTool(ToolContext(config=config, redis=None, stack=contextlib.ExitStack()))


def run_zoom(tool: ImageZoomInTool, box: list[int]):
    content = wire.parse_action(wire.tool_call_action("image_zoom_in_tool", {"bbox_2d": box})).content
    return tool.execute(ToolSession("s", [IMAGE]), content)


def test_zoom_reads_the_box_in_the_processed_frame_when_told_the_limits() -> None:
    frame = ImageFrame.for_qwen(IMAGE.size, 56 * 56, 224 * 224)
    assert frame.processed == (252, 168)
    right_half = [126, 0, 252, 168]  # the right half, in the pixels the model saw
    output = run_zoom(zoom_tool(**LIMITS), right_half)
    (crop,) = output.images
    assert output.status == "success" and crop.size == (320, 480)
    assert crop.getpixel((0, 0)) == (0, 0, 255) and crop.getpixel((319, 479)) == (0, 0, 255)
    # The same box as a grounding answer means the same region of the file.
    answer = score_response(wire.answer_action(str(right_half)), [320, 0, 640, 480], data_source="rec", image_frame=frame.to_dict())
    assert answer["details"]["iou"] == 1.0
    # Outside the frame the model saw is outside, even where the file is larger.
    refused = run_zoom(zoom_tool(**LIMITS), [300, 0, 600, 100])
    assert refused.status == "error"


def test_without_limits_the_box_is_in_the_files_pixels_as_before() -> None:
    output = run_zoom(zoom_tool(), [320, 0, 640, 480])
    (crop,) = output.images
    assert crop.size == (320, 480) and crop.getpixel((10, 10)) == (0, 0, 255)


def test_the_code_tool_kernel_helpers_convert_like_the_frame() -> None:
    session = ToolSession("s", [IMAGE, Image.new("RGB", (100, 50))])
    namespace: dict = {}
    exec(frame_helpers(session, ToolsConfig(**LIMITS)), namespace)  # what CodeTool.open runs in the kernel
    frame = ImageFrame.for_qwen(IMAGE.size, 56 * 56, 224 * 224)
    box = [126, 0, 252, 168]
    assert namespace["to_image_pixels"](box) == pytest.approx(list(frame.to_original(tuple(box))))
    assert namespace["to_model_pixels"]([320, 0, 640, 480]) == pytest.approx(list(frame.to_processed((320, 0, 640, 480))))
    small = ImageFrame.for_qwen((100, 50), 56 * 56, 224 * 224)
    assert namespace["frame_scales"][2] == pytest.approx(small.scale)
