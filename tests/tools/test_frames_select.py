"""select_frames end to end: frames by index and by time reach the model as numbered images,
the zoom tool crops a shown frame, bad arguments and a disabled tool give observations the
model can read, and the record, the reward and the text route count the calls alike.

The videos are ``tests/video_media.py``'s white square moving 4 px right per frame, so which
frame came back is read off the image (:func:`square_left_edge`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_media import frame, square_box, square_left_edge, write_mp4

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, Rollout
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.rewards import score_response, score_trajectory
from deepeyes.tool_manager import ToolManager, ToolManagerConfig
from deepeyes.tools.select_frames import nearest_frame
from deepeyes.trajectory import Trajectory
from deepeyes.videos import VideoClip, VideoSampling, load_video

#: Frames as a list: sampled at the default 2 fps, frame i is shown at i / 2 seconds.
FRAMES = [frame(step) for step in range(6)]
RED = Image.new("RGB", (64, 48), (255, 0, 0))
KEYS = ("score", "accuracy", "format", "tool_efficiency", "task_completion")


def select(**arguments: object) -> str:
    return wire.think("look at frames") + wire.tool_call_action("select_frames", arguments)


def zoom(image: int, box: tuple[int, int, int, int]) -> str:
    return wire.think("closer") + wire.tool_call_action("image_zoom_in_tool", {"image": image, "bbox_2d": list(box)})


def run(manager: ToolManager, turns: list[str], images: list[Image.Image] | None = None, **request: object) -> Rollout:
    request.setdefault("videos", [list(FRAMES)])
    loop = AgentLoop(manager, AgentConfig(max_turns=len(turns)))
    return loop.rollout(ScriptedPolicy(turns), AgentRequest("Where does the square go?", images or [], ground_truth="right", **request))


def observed(rollout: Rollout, turn: int) -> list[Image.Image]:
    """The images the model got back after ``turn`` (the user message that follows it)."""
    return rollout.messages[2 + 2 * turn + 1].images


def test_frames_by_index_come_back_as_numbered_images(frames_manager: ToolManager) -> None:
    done = run(frames_manager, [select(indices=[4, 1]), wire.answer_action("right")], images=[RED])
    observation = done.trajectory.turns[0].observation
    assert observation.status == "success" and observation.image_count == 2
    assert [square_left_edge(image) for image in observed(done, 0)] == [square_box(4)[0], square_box(1)[0]]
    # Numbered after the question's one image, in the order asked; the code name is given.
    assert "Frame 4 of video 1 at 2.00 s (video_1_frames[4] in code), now image 2:" in observation.text
    assert "Frame 1 of video 1 at 0.50 s (video_1_frames[1] in code), now image 3:" in observation.text
    assert observation.text.count(wire.IMAGE_PLACEHOLDER) == 2
    assert done.trajectory.tool_calls.select_frames == 1


def test_frames_by_time_take_the_nearest_sampled_frame(frames_manager: ToolManager) -> None:
    done = run(frames_manager, [select(times=[1.1, 0.74, 2.9]), wire.answer_action("right")])
    # 1.1 s -> frame 2 (1.0 s); 0.74 s -> frame 1 (0.5 s, nearer than 1.0 s); 2.9 s -> the last, frame 5 (2.5 s).
    assert [square_left_edge(image) for image in observed(done, 0)] == [square_box(step)[0] for step in (2, 1, 5)]
    clip = load_video(list(FRAMES))
    assert nearest_frame(clip, 0.25) == 0  # a tie goes to the earlier frame
    assert nearest_frame(clip, 0.26) == 1


def test_times_of_a_video_file_are_its_decoded_timestamps(frames_manager: ToolManager, tmp_path: Path) -> None:
    # 8 frames at 4 fps (2 s), sampled at 2 fps: 4 frames, file frames 0, 2, 4, 7 at 0, 0.5, 1.0, 1.75 s.
    video = write_mp4(tmp_path / "clip.mp4", count=8, fps=4)
    done = run(frames_manager, [select(times=[1.7]), zoom(1, square_box(7)), wire.answer_action("right")], videos=[video])
    (shown,) = observed(done, 0)
    assert abs(square_left_edge(shown) - square_box(7)[0]) <= 1  # MP4 is lossy: an edge may blur by a pixel
    assert "at 1.75 s" in done.trajectory.turns[0].observation.text
    # No input image: the frame is image 1, and the zoom crops the square out of it.
    (crop,) = observed(done, 1)
    assert done.trajectory.turns[1].observation.status == "success"
    assert np.asarray(crop.convert("L")).mean() > 200


def test_zoom_into_a_selected_frame_crops_that_frame(frames_manager: ToolManager) -> None:
    box = square_box(3)
    turns = [select(indices=[3]), zoom(2, box), zoom(1, box), wire.answer_action("right")]
    done = run(frames_manager, turns, images=[RED])
    assert "now image 2" in done.trajectory.turns[0].observation.text
    (crop,) = observed(done, 1)
    assert done.trajectory.turns[1].observation.status == "success" and "of image 2." in done.trajectory.turns[1].observation.text
    # The 12 px crop reaches the model enlarged to Qwen's 28 px minimum side, all white: the square of frame 3, exactly.
    assert crop.size == (28, 28) and np.asarray(crop).min() == 255
    # The same box on image 1 crops the question's image, not the frame.
    (red,) = observed(done, 2)
    assert red.getpixel((0, 0)) == (255, 0, 0)
    # Without input images frames 3 and 4 are images 1 and 2: the box of the square in frame 4
    # is partly black on frame 3 and all white on frame 4.
    later = square_box(4)
    done = run(frames_manager, [select(indices=[3, 4]), zoom(1, later), zoom(2, later), wire.answer_action("right")])
    off, on = observed(done, 1)[0], observed(done, 2)[0]
    assert np.asarray(off).min() == 0 and np.asarray(on).min() == 255


def test_a_frame_shown_again_keeps_its_number(frames_manager: ToolManager) -> None:
    done = run(frames_manager, [select(indices=[2]), select(indices=[5, 2]), wire.answer_action("right")])
    first, second = (turn.observation for turn in done.trajectory.turns[:2])
    assert "video_1_frames[2] in code), now image 1:" in first.text
    assert "video_1_frames[5] in code), now image 2:" in second.text
    assert "video_1_frames[2] in code), now image 1:" in second.text


@pytest.mark.parametrize(
    ("arguments", "videos", "expected"),
    [
        ({"indices": [0]}, [], "this question has no video"),
        ({"video": 2, "indices": [0]}, None, "video 2 does not exist: this question has 1 video(s)"),
        ({"indices": [1, 6, 9]}, None, "frame indices [6, 9] are out of range: video 1 has 6 frames, indices 0 to 5"),
        ({"times": [3.01]}, None, "times [3.01] are past the end of video 1: its 6 frames span 0.00 to 2.50 s"),
    ],
    ids=["no_video", "no_such_video", "index_out_of_range", "time_past_the_end"],
)
def test_frames_that_do_not_exist_are_an_error_the_model_reads(
    frames_manager: ToolManager, arguments: dict, videos: list | None, expected: str
) -> None:
    request = {} if videos is None else {"videos": videos}
    done = run(frames_manager, [select(**arguments), wire.answer_action("right")], **request)
    observation = done.trajectory.turns[0].observation
    assert observation.status == "error" and observation.image_count == 0
    assert expected in observation.text and observation.text.startswith(wire.TOOL_RESPONSE_OPEN)
    assert (done.trajectory.tool_calls.select_frames, done.trajectory.tool_calls.failed) == (1, 1)
    assert done.trajectory.stop_reason == "answer"  # the run goes on


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({}, "exactly one of indices or times"),
        ({"indices": []}, "non-empty list"),
        ({"indices": [1], "times": [1.0]}, "exactly one of indices or times"),
        ({"indices": [-1]}, "frame positions"),
        ({"indices": [1.5]}, "frame positions"),
        ({"times": [-0.5]}, "seconds from the start"),
        ({"video": 0, "indices": [1]}, "video must be a video number"),
        ({"indices": [1], "fps": 2}, "unknown argument(s) ['fps']"),
        ({"indices": list(range(33))}, "at most 32 frames"),
    ],
)
def test_malformed_arguments_are_an_invalid_call_with_a_reason(frames_manager: ToolManager, arguments: dict, reason: str) -> None:
    action = wire.parse_action(wire.tool_call_action("select_frames", arguments))
    assert action.kind == "invalid" and reason in action.reason
    done = run(frames_manager, [select(**arguments), wire.answer_action("right")])
    assert done.trajectory.tool_calls.invalid == 1 and reason in done.trajectory.turns[0].observation.text


def test_canonical_content_makes_repeats_repeats() -> None:
    first = wire.parse_action(wire.tool_call_action("select_frames", {"indices": [3, 0, 3]}))
    again = wire.parse_action(wire.tool_call_action("select_frames", {"video": 1, "indices": [3, 0]}))
    assert first.content == again.content == '{"video": 1, "indices": [3, 0]}'
    # The zoom's content is v1's unless another image is named.
    assert wire.parse_action(wire.tool_call_action("image_zoom_in_tool", {"bbox_2d": [0, 0, 5, 5], "image": 1})).content == (
        '{"bbox_2d": [0, 0, 5, 5], "label": ""}'
    )


def test_a_zoom_into_an_image_that_does_not_exist_is_an_error(frames_manager: ToolManager) -> None:
    done = run(frames_manager, [select(indices=[0]), zoom(3, (0, 0, 8, 8)), wire.answer_action("right")], images=[RED])
    observation = done.trajectory.turns[1].observation
    assert observation.status == "error" and "image 3 does not exist: there are 2 image(s)" in observation.text


@pytest.mark.parametrize("name", ["select_frames", "frames"])
def test_a_disabled_frame_tool_is_refused_and_counted_invalid(frames_manager: ToolManager, name: str) -> None:
    done = run(frames_manager, [select(indices=[0]), wire.answer_action("right")], disabled_tools={name})
    observation = done.trajectory.turns[0].observation
    assert observation.status == "disabled" and observation.image_count == 0
    assert (done.trajectory.tool_calls.select_frames, done.trajectory.tool_calls.invalid) == (0, 1)


def test_image_limits_apply_to_frames(redis_server) -> None:
    config = ToolManagerConfig()
    config.tools.enabled = ["select_frames"]
    config.tools.max_images_per_round = 2
    config.sandbox.redis_host, config.sandbox.redis_port = redis_server.host, redis_server.port
    with ToolManager(config=config) as manager:
        done = run(manager, [select(indices=[0, 1, 2, 3]), wire.answer_action("right")])
    observation = done.trajectory.turns[0].observation
    assert observation.image_count == 2 and "2 more image(s) not shown: at most 2 per call" in observation.text
    assert "now image 2:" in observation.text and "video_1_frames[2]" not in observation.text


def test_calls_count_alike_in_the_record_the_reward_and_the_text_route(frames_manager: ToolManager) -> None:
    turns = [select(indices=[1]), select(indices=[1]), select(indices=[7]), zoom(1, (0, 0, 20, 20)), wire.answer_action("right")]
    trajectory = run(frames_manager, turns).trajectory
    counts = trajectory.tool_calls
    assert (counts.select_frames, counts.image_zoom_in_tool, counts.repeated, counts.failed) == (3, 1, 1, 1)
    assert Trajectory.from_dict(trajectory.to_dict()).tool_calls == counts  # the schema takes the kind and the count
    expected = score_trajectory(trajectory)
    assert expected["details"]["tool_calls"]["select_frames"] == 3
    text = score_response(wire.render_response(trajectory), "right")
    assert {k: text[k] for k in KEYS} == {k: expected[k] for k in KEYS}
    assert text["details"]["tool_calls"] == expected["details"]["tool_calls"]


def test_a_clip_given_decoded_is_used_as_is(frames_manager: ToolManager) -> None:
    clip = VideoClip("<in-memory>", [frame(0), frame(5)], [0.0, 4.0])
    done = run(frames_manager, [select(times=[3.0]), wire.answer_action("right")], videos=[clip], video_sampling=VideoSampling(fps=1.0))
    assert [square_left_edge(image) for image in observed(done, 0)] == [square_box(5)[0]]
