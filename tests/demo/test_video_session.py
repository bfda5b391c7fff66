"""Videos on the chat page without a browser: upload checks, the page's sampling settings, the record and its rendering."""

from __future__ import annotations

import base64
import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image
from video_media import square_left_edge, write_mp4

from deepeyes import wire
from deepeyes.chat import Message, all_videos
from deepeyes.demo.render import TrajectoryMedia, render_trajectory
from deepeyes.demo.session import ChatRun, InputError, RunSettings, prepare_input
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import (
    Trajectory,
    read_jsonl,
    write_jsonl,
)
from deepeyes.videos import VideoSampling


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 frames at 4 fps (2 s): a square moving 4 px right per frame."""
    return write_mp4(tmp_path_factory.mktemp("video") / "square.mp4", count=8, fps=4)


def frames_seen(messages: list[Message]) -> str:
    """The policy's answer: the frame count of each video it was given and where the square was in the last frame."""
    clips = all_videos(messages)
    return wire.answer_action("; ".join(f"{len(c.frames)} frames, last edge {square_left_edge(c.frames[-1])}" for c in clips) or "no video")


def test_uploaded_videos_are_decoded_with_the_page_sampling(clip: Path) -> None:
    prepared = prepare_input(None, "Which way?", video_paths=[str(clip)])
    assert [len(video.frames) for video in prepared.videos] == [4]  # 2 s at the default 2 fps
    every = prepare_input(None, "Which way?", video_paths=[str(clip)], video_sampling=VideoSampling(fps=4, max_frames=6))
    assert len(every.videos[0].frames) == 6 and every.videos[0].source == str(clip)


def test_a_file_that_is_not_a_video_gets_a_message(tmp_path: Path, clip: Path) -> None:
    junk = tmp_path / "holiday.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(InputError, match=r"^“holiday.mp4” is not a video this demo can read \(cannot decode: "):
        prepare_input(None, "q", video_paths=[str(clip), str(junk)])
    with pytest.raises(InputError, match="type a question"):
        prepare_input(None, " ", video_paths=[str(clip)])


def test_the_run_gives_the_policy_the_sampled_frames_and_the_page_shows_their_count(clip: Path, tmp_path: Path) -> None:
    settings = RunSettings(video_fps=4.0, video_max_frames=5)
    prepared = prepare_input(None, "Where does the square end?", video_paths=[str(clip)], video_sampling=settings.video_sampling())
    run = ChatRun(ScriptedPolicy(frames_seen), None, prepared, settings)
    assert run.request.video_sampling == VideoSampling(fps=4.0, max_frames=5)
    final = list(run.updates())[-1]
    trajectory = final.trajectory
    # 5 frames spread over the 8: the last one is the file's last (the square at x = 4 + 4 * 7).
    assert trajectory.final_answer == "5 frames, last edge 32"
    assert trajectory.videos == [{"source": str(clip), "frames": 5}]
    assert '<span class="de-frame-count">5 frames</span>' in final.html and "square.mp4" in final.html
    assert final.html.count('class="de-frame"') == 5
    # The downloaded record keeps the frame thumbnails and renders the same.
    path = tmp_path / "video.jsonl"
    write_jsonl(path, [trajectory], append=False)
    (loaded,) = read_jsonl(path)
    assert render_trajectory(loaded) == final.html and len(TrajectoryMedia.of(loaded).videos[0]) == 5


def test_a_record_from_another_stage_names_its_videos_without_frames() -> None:
    record = Trajectory(id="e1", question="q", images=[], videos=[{"source": "/data/clips/run.mp4", "frames": 1}])
    html = render_trajectory(record)
    assert '<span class="de-video-name">run.mp4</span>' in html and '<span class="de-frame-count">1 frame</span>' in html
    assert 'class="de-frame"' not in html


def test_frames_select_frames_showed_are_rendered_under_their_captions(clip: Path, demo_tool_manager: ToolManager) -> None:
    """The real tool, through the manager: its frames reach on_turn, are stored with the run and shown in order."""

    def script(messages: list[Message]) -> str:
        if sum(m.role == "assistant" for m in messages) == 0:
            return wire.think("look again") + wire.tool_call_action("select_frames", {"video": 1, "indices": [3, 0]})
        return wire.answer_action("right")

    prepared = prepare_input(None, "Which way does the square move?", video_paths=[str(clip)])
    final = list(ChatRun(ScriptedPolicy(script), demo_tool_manager, prepared, RunSettings()).updates())[-1]
    observation = final.trajectory.turns[0].observation
    assert observation.status == "success" and observation.image_count == 2 and final.trajectory.tool_calls.select_frames == 1
    stored = TrajectoryMedia.of(final.trajectory).observations[0]
    edges = [square_left_edge(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))) for url in stored]
    assert edges == [4 + 4 * 7, 4]  # sampled frame 3 is the file's last (4 of 8 kept: 0, 2, 4, 7), then frame 0
    html = final.html
    assert html.count('class="de-figure de-selected-frame"') == 2
    captions = re.findall(r'<div class="de-frame-caption">(.*?)</div>', html)
    assert [caption.split(" at ")[0] for caption in captions] == ["Frame 3 of video 1", "Frame 0 of video 1"]
    assert html.index(captions[0]) < html.index("selected frame 1") < html.index(captions[1]) < html.index("selected frame 2")


def test_python_m_deepeyes_demo_is_the_documented_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["python -m deepeyes.demo", "--help"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        runpy.run_module("deepeyes.demo", run_name="__main__")
    assert exited.value.code == 0
    for flag in ("--model_path", "--api_base", "--port", "--share", "--max_turns"):
        assert flag in out.getvalue()
