"""The coordinate-frame round trip: a box drawn on a known image, resized by the real processor.

The test draws a red rectangle at a known place in original pixels, runs the image through
transformers' ``Qwen2VLImageProcessor`` (the processor Qwen2.5-VL checkpoints ship) and
qwen-vl-utils' ``fetch_image``, finds the rectangle again in the pixels the model receives,
and maps it back with :class:`deepeyes.images.ImageFrame`.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from qwen_vl_utils import fetch_image
from transformers import Qwen2VLImageProcessor

from deepeyes import wire
from deepeyes.images import ImageFrame, llamafactory_size, prepare_for_qwen
from deepeyes.rewards import score_response
from deepeyes.rewards.grounding import iou

RED = (220, 30, 30)


def drawn(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, (245, 245, 245))
    ImageDraw.Draw(image).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=RED)  # x2, y2 exclusive
    return image


def red_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (exclusive right/bottom) of the reddish pixels of an H×W×3 array in [0, 255]."""
    mask = (pixels[..., 0] > 150) & (pixels[..., 1] < 110) & (pixels[..., 2] < 110)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def unpatchify(processor: Qwen2VLImageProcessor, image: Image.Image) -> np.ndarray:
    """The processor's ``pixel_values`` put back into an H×W×3 picture in [0, 255].

    The inverse of the patch flattening in ``Qwen2VLImageProcessor`` (one image, one
    temporal step kept): patches are ordered (grid_h/m, grid_w/m, m, m) and each holds
    (channel, temporal, patch, patch) values, normalised by the processor's mean and std.
    """
    out = processor(images=[image], return_tensors="np")
    _, grid_h, grid_w = (int(v) for v in out["image_grid_thw"][0])
    p, m, t = processor.patch_size, processor.merge_size, processor.temporal_patch_size
    patches = np.asarray(out["pixel_values"]).reshape(grid_h // m, grid_w // m, m, m, 3, t, p, p)[:, :, :, :, :, 0]
    chw = patches.transpose(4, 0, 2, 5, 1, 3, 6).reshape(3, grid_h * p, grid_w * p)
    mean = np.array(processor.image_mean).reshape(3, 1, 1)
    std = np.array(processor.image_std).reshape(3, 1, 1)
    return ((chw * std + mean) * 255).transpose(1, 2, 0)


@pytest.mark.parametrize(
    ("size", "box", "min_pixels", "max_pixels"),
    [
        ((640, 480), (100, 60, 300, 200), 3136, 256 * 28 * 28),  # COCO-sized, shrunk
        ((500, 375), (320, 40, 480, 330), 3136, 12845056),  # Qwen's default budget: only snapped to 28
        ((96, 64), (10, 8, 50, 40), 128 * 28 * 28, 12845056),  # tiny: enlarged to min_pixels
        ((320, 320), (40, 200, 120, 300), 56 * 56, 224 * 224),  # the tiny model's budget
    ],
)
def test_a_drawn_box_survives_the_real_processor(size, box, min_pixels, max_pixels) -> None:
    image = drawn(size, box)
    frame = ImageFrame.for_qwen(size, min_pixels, max_pixels)
    processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    seen = unpatchify(processor, image)
    # The frame's processed size is the size the processor produced.
    assert (seen.shape[1], seen.shape[0]) == frame.processed
    # qwen-vl-utils (what vLLM-served and our HF policy resize by) agrees, and so does ours.
    assert fetch_image({"image": image, "min_pixels": min_pixels, "max_pixels": max_pixels}).size == frame.processed
    assert prepare_for_qwen(image, min_pixels, max_pixels).size == frame.processed
    # The rectangle found in the model's pixels maps back onto the drawn one.
    found = red_box(seen)
    expected = frame.to_processed(box)
    assert all(abs(a - b) <= 1.5 for a, b in zip(found, expected)), (found, expected)
    back = frame.to_original(found)
    sx, sy = frame.scale
    assert all(abs(a - b) <= 1.5 / s for a, b, s in zip(back, box, (sx, sy, sx, sy))), (back, box)
    assert iou(back, box) > 0.95
    # The reward, given the frame, scores the box the model would write there as right.
    answer = wire.answer_action('{"bbox_2d": %s, "label": "red"}' % list(found))
    result = score_response(answer, list(box), data_source="refcoco", image_frame=frame.to_dict())
    assert result["accuracy"] == 1.0 and result["details"]["iou"] > 0.95
    # Without the frame the same answer is read in original pixels: it only matches when
    # the processor left the image's size alone.
    plain = score_response(answer, list(box), data_source="refcoco")
    assert (plain["details"]["iou"] > 0.95) == (frame.scale == pytest.approx((1.0, 1.0), abs=0.02))


def test_round_trip_is_exact_in_floats_and_sizes_are_checked() -> None:
    frame = ImageFrame.for_qwen((1000, 750), max_pixels=200 * 28 * 28)
    box = (123.0, 45.5, 678.25, 700.0)
    assert frame.to_original(frame.to_processed(box)) == pytest.approx(box)
    assert ImageFrame.from_dict(frame.to_dict()) == frame
    assert ImageFrame.identity((30, 40)).scale == (1.0, 1.0)
    with pytest.raises(ValueError, match="original"):
        ImageFrame((0, 10), (28, 28))
    with pytest.raises(ValueError, match="frame"):
        ImageFrame.from_dict({"original": [10, 10]})


def test_llamafactory_pre_resize() -> None:
    # LLaMA-Factory shrinks by sqrt(limit / area) and truncates before the processor runs.
    assert llamafactory_size((1000, 800), 768 * 768, 32 * 32) == (858, 686)
    assert llamafactory_size((20, 10), 768 * 768, 32 * 32) == (45, 22)
    assert llamafactory_size((640, 480), 768 * 768, 32 * 32) == (640, 480)
