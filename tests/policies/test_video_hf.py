"""Videos through :class:`HFPolicy` on the tiny random Qwen2.5-VL (its ``Qwen2VLVideoProcessor``).

A clip reaches the model through the processor's video path with its sampled rate as
absolute time; the decode loop gives the ids ``model.generate`` gives on the same inputs,
single and batched beside images and text; the prompt's token count holds the video tokens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from video_media import frame

from deepeyes import wire
from deepeyes.agent import prompt_tokens
from deepeyes.chat import Message, all_images, all_videos
from deepeyes.images import prepare_for_qwen
from deepeyes.policies.decoding import intra_op_threads
from deepeyes.policies.hf import HFPolicy, to_hf_messages, trim_turn
from deepeyes.policies.video import fit_clip, processor_metadata
from deepeyes.prompts import system_prompt, user_prompt
from deepeyes.tools.budget import tokenizer_counter
from deepeyes.videos import VideoClip, limit_pixels

MAX_NEW = 8


@pytest.fixture(scope="module")
def policy(tiny_model_dir: Path) -> HFPolicy:
    return HFPolicy(tiny_model_dir, max_new_tokens=MAX_NEW)


def _clip(count: int = 4, fps: float = 2.0, size: tuple[int, int] = (56, 56)) -> VideoClip:
    """``count`` frames of the moving square at ``size``, shot at ``fps``."""
    return VideoClip("<in-memory>", [frame(i).resize(size) for i in range(count)], [i / fps for i in range(count)])


def _conversation(question: str, images: list[Image.Image] | None = None, videos: list[VideoClip] | None = None) -> list[Message]:
    images, videos = images or [], videos or []
    return [Message("system", system_prompt()), Message("user", user_prompt(question, len(images), len(videos)), images, videos)]


VIDEO = _conversation("Which way does the square move?", videos=[_clip()])
MIXED = [
    VIDEO,
    _conversation("Is the picture the first frame?", images=[frame(0)], videos=[_clip(fps=4.0)]),
    [Message("user", "no image, no video")],
    _conversation("Compare the clips.", videos=[_clip(3, 1.0, (84, 56)), _clip(6, 3.0)]),
]


def _inputs(policy: HFPolicy, conversations: list[list[Message]]) -> dict[str, torch.Tensor]:
    """Processor inputs built directly (frames already on the 28-px grid, so nothing is fitted)."""
    prompts = [policy.processor.apply_chat_template(to_hf_messages(m), add_generation_prompt=True, tokenize=False) for m in conversations]
    images = [prepare_for_qwen(image, policy.min_pixels, policy.max_pixels) for m in conversations for image in all_images(m)]
    clips = [clip for m in conversations for clip in all_videos(m)]
    policy.tokenizer.padding_side = "left"
    return dict(policy.processor(
        text=prompts, images=images or None, videos=[c.frames for c in clips] or None,
        video_metadata=[processor_metadata(c) for c in clips] or None, padding=True, return_tensors="pt",
    ))


def _reference(policy: HFPolicy, conversations: list[list[Message]]) -> list[list[int]]:
    """Greedy ``model.generate`` on the same inputs, each row cut at its first end token or stop string."""
    inputs = _inputs(policy, conversations)
    with torch.no_grad(), intra_op_threads(1):
        output = policy.model.generate(
            **inputs, max_new_tokens=MAX_NEW, do_sample=False, top_k=None, stop_strings=list(wire.STOP_STRINGS),
            tokenizer=policy.tokenizer, pad_token_id=policy.tokenizer.pad_token_id, logits_processor=list(policy._logits_processors),
        )
    end_ids, rows = policy._end_ids(), []
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():
        cut = next(
            (i + 1 for i, token in enumerate(row)
             if token in end_ids or policy.tokenizer.decode(row[max(0, i - 8) : i + 1]).rstrip().endswith(wire.STOP_STRINGS)),
            len(row),
        )
        rows.append(row[:cut])
    return rows


def test_a_clip_goes_through_the_video_path_with_its_rate_as_absolute_time(policy: HFPolicy) -> None:
    slow = policy.encode(_conversation("Which way?", videos=[_clip(4, fps=2.0)]))
    fast = policy.encode(_conversation("Which way?", videos=[_clip(4, fps=4.0)]))
    # 4 frames of 56x56: 2 temporal patches of 2 frames, 4x4 patches of 14 px, merged 2x2 into 4 tokens each.
    assert slow["video_grid_thw"].tolist() == [[2, 4, 4]] and "pixel_values" not in slow
    assert int((slow["input_ids"] == policy.processor.video_token_id).sum()) == 2 * 4 * 4 // 4
    # Each temporal patch spans 2 frames: 1 s at 2 fps, 0.5 s at 4 fps.
    assert slow["second_per_grid_ts"].tolist() == pytest.approx([1.0]) and fast["second_per_grid_ts"].tolist() == pytest.approx([0.5])
    # Same tokens and pixels; only the time between frames differs, and the model sees it (M-RoPE temporal positions).
    assert torch.equal(slow["input_ids"], fast["input_ids"]) and torch.equal(slow["pixel_values_videos"], fast["pixel_values_videos"])
    with torch.no_grad():
        assert not torch.equal(policy.model(**slow).logits[:, -1], policy.model(**fast).logits[:, -1])


def test_greedy_video_turns_equal_generate_single_and_batched(policy: HFPolicy) -> None:
    single = policy.generate(VIDEO)
    assert single.token_ids == _reference(policy, [VIDEO])[0]
    batched = policy.generate_batch(MIXED)  # a video, an image beside a video, text only, two clips of other sizes and lengths
    reference = _reference(policy, MIXED)
    assert [g.token_ids for g in batched] == reference
    assert batched[0].token_ids == single.token_ids  # left padding changes nothing
    for generation, ids in zip(batched, reference, strict=True):
        assert generation.text == trim_turn(policy.tokenizer.decode(ids, skip_special_tokens=False))


def test_prompt_tokens_hold_the_video_tokens_and_the_loop_budget_bounds_them(policy: HFPolicy) -> None:
    with_video, text_only = policy.generate_batch([VIDEO, _conversation("Which way does the square move?")])
    video_pad = policy.processor.video_token_id
    assert with_video.prompt_tokens == len(with_video.prompt_token_ids)
    assert with_video.prompt_token_ids.count(video_pad) == 8  # the grid of test above: 2 x 4 x 4 / 4
    assert with_video.prompt_tokens - text_only.prompt_tokens >= 8  # plus the <video> markers of the template
    # The agent loop's context budget counts at least what the processor produced.
    assert prompt_tokens(VIDEO, tokenizer_counter(policy.tokenizer), policy.max_pixels) >= with_video.prompt_tokens


def test_frames_off_the_grid_or_of_mixed_sizes_are_fitted_to_one_grid_size(policy: HFPolicy) -> None:
    raw = VideoClip("<in-memory>", [frame(i) for i in range(4)], [0.0, 0.5, 1.0, 1.5])  # 64x48: no 28-px grid
    fitted = policy.generate(_conversation("Which way?", videos=[raw]))
    on_grid = policy.generate(_conversation("Which way?", videos=[_clip(4, 2.0, (56, 56))]))
    assert fitted.token_ids == on_grid.token_ids and fitted.prompt_token_ids == on_grid.prompt_token_ids
    mixed = VideoClip("<frames>", [frame(0), frame(1).resize((60, 40)), frame(2).resize((90, 30))], [0.0, 0.5, 1.0])
    sizes = {f.size for f in fit_clip(mixed, *_video_bounds(policy)).frames}
    assert sizes == {(56, 56)}
    on_grid_clip = _clip()
    assert fit_clip(on_grid_clip, *_video_bounds(policy)) is on_grid_clip  # nothing copied


def test_a_request_pixel_limit_scales_frames_down_onto_the_grid_and_never_up() -> None:
    big = _clip(3, 2.0, (224, 168))
    limited = limit_pixels(big, 20000)
    width, height = limited.frames[0].size
    assert width * height <= 20000 and width % 28 == 0 and height % 28 == 0 and width > height
    assert {f.size for f in limited.frames} == {(width, height)} and limited.timestamps == big.timestamps
    assert limited.source == big.source
    assert limit_pixels(big, None) is big and limit_pixels(big, 224 * 168) is big
    small = _clip(2, 2.0, (30, 20))
    assert limit_pixels(small, 5000) is small
    # A tight limit keeps a 28-px side (smart_resize alone rounds 48 px at 1000 pixels down to 0).
    assert limit_pixels(_clip(2, 2.0, (64, 48)), 1000).frames[0].size == (28, 28)


def _video_bounds(policy: HFPolicy) -> tuple[int, int]:
    """The video processor's pixel bounds, which the policy fits every clip within."""
    size = policy.processor.video_processor.size
    return int(size["shortest_edge"]), int(size["longest_edge"])
