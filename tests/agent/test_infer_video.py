"""``python -m deepeyes.infer --video …``: files and frame folders beside images, per-request
sampling flags, the trajectory naming each video, and one-line errors for unreadable videos.

In-process (a fresh interpreter costs minutes on the loaded 2-core machine); the remote
path runs against the loopback chat stand-in of ``test_policies``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from test_policies import ChatStandIn, completion
from video_media import square_left_edge, write_frames, write_mp4

from deepeyes.infer import main
from deepeyes.trajectory import read_jsonl
from deepeyes.videos import VideoSampling, load_video

MP4_PREFIX = "data:video/mp4;base64,"


@pytest.fixture()
def stand_in() -> Iterator[ChatStandIn]:
    server = ChatStandIn()
    server.thread.start()
    yield server
    server.server.shutdown()


@pytest.fixture()
def media(tmp_path: Path) -> dict[str, Path]:
    image = tmp_path / "red.png"
    Image.new("RGB", (32, 32), "red").save(image)
    write_frames(tmp_path / "frames", count=6)
    return {"mp4": write_mp4(tmp_path / "clip.mp4", count=8, fps=4), "frames": tmp_path / "frames", "image": image}


def _sent_clip(url: str, folder: Path, name: str):
    assert url.startswith(MP4_PREFIX)
    path = folder / name
    path.write_bytes(base64.b64decode(url[len(MP4_PREFIX) :]))
    return load_video(path, VideoSampling(fps=100.0, max_frames=100))


def test_videos_and_an_image_reach_the_server_in_order_and_the_record_names_each_video(
    stand_in: ChatStandIn, media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.replies.append((200, completion("<think>it moves right</think>\n<answer>right</answer>")))
    out = tmp_path / "t.jsonl"
    code = main([
        "--image", str(media["image"]), "--video", str(media["mp4"]), "--video", str(media["frames"]),
        "--question", "Which way does the square move?", "--video_fps", "2", "--video_max_frames", "5",
        "--api_base", stand_in.api_base, "--force_no_tool", "--trajectory_out", str(out),
    ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    (trajectory,) = read_jsonl(out)
    # 2 s of a 4 fps file at 2 fps: 4 frames; 6 frames of a folder thinned to 5.
    assert trajectory.videos == [{"source": str(media["mp4"]), "frames": 4}, {"source": str(media["frames"]), "frames": 5}]
    assert trajectory.images == [str(media["image"])] and trajectory.final_answer == "right"
    assert f"video 1: {media['mp4']}" in printed and "4 frame(s)" in printed
    parts = stand_in.requests[0]["json"]["messages"][1]["content"]
    kinds = [p["type"] for p in parts if p["type"] != "text"]
    assert kinds == ["image_url", "video_url", "video_url"]  # images first, then videos, as the prompt's placeholders say
    urls = [p["video_url"]["url"] for p in parts if p["type"] == "video_url"]
    first, second = _sent_clip(urls[0], tmp_path, "a.mp4"), _sent_clip(urls[1], tmp_path, "b.mp4")
    assert [square_left_edge(f) for f in first.frames] == [4, 12, 20, 32]  # the file's frames 0, 2, 4, 7: what the record counts
    assert len(second.frames) == 5


def test_the_pixel_limit_scales_frames_before_the_model_sees_them(
    stand_in: ChatStandIn, media: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_in.replies.append((200, completion("<answer>right</answer>")))
    code = main(["--video", str(media["mp4"]), "--question", "q", "--video_max_pixels", "1000",
                 "--api_base", stand_in.api_base, "--force_no_tool"])
    assert code == 0, capsys.readouterr().out
    (part,) = [p for p in stand_in.requests[0]["json"]["messages"][1]["content"] if p["type"] == "video_url"]
    width, height = _sent_clip(part["video_url"]["url"], tmp_path, "small.mp4").frames[0].size
    assert width * height <= 1000  # 64x48 frames, scaled onto the 28-px grid within the limit


def test_a_video_runs_greedy_on_the_tiny_model(media: dict[str, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    code = main(["--video", str(media["frames"]), "--question", "Which way?", "--model_path", str(tiny_model_dir),
                 "--force_no_tool", "--max_new_tokens", "4", "--video_max_frames", "3", "--trajectory_out", str(out)])
    assert code == 0
    (trajectory,) = read_jsonl(out)
    assert trajectory.videos == [{"source": str(media["frames"]), "frames": 3}] and len(trajectory.turns) == 1
    assert 1 <= trajectory.turns[0].completion_tokens <= 4


@pytest.mark.parametrize("make", [
    lambda folder: folder / "missing.mp4",
    lambda folder: (folder / "bad.mp4", (folder / "bad.mp4").write_text("not a video"))[0],
    lambda folder: (folder / "empty", (folder / "empty").mkdir())[0],
])
def test_an_unreadable_video_is_one_line_naming_it_and_exit_2(make, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make(tmp_path)
    assert main(["--video", str(path), "--question", "q", "--force_no_tool", "--api_base", "http://127.0.0.1:9/v1"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and str(path) in lines[0]
    assert "Traceback" not in captured.out + captured.err


@pytest.mark.parametrize(("argv", "named"), [
    (["--question", "q"], "--image or --video"),
    (["--video", "v.mp4", "--question", "q", "--video_fps", "0"], "video_fps"),
    (["--video", "v.mp4", "--question", "q", "--video_max_frames", "0"], "video_max_frames"),
])
def test_bad_video_flags_exit_2_naming_them(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and named in capsys.readouterr().err


def test_help_explains_the_video_flags_with_the_sampling_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = VideoSampling()
    for flag, default in (("--video_fps", defaults.fps), ("--video_max_frames", defaults.max_frames)):
        assert flag in text and f"{flag} {flag[2:].upper()}" in text and f"(default: {default})" in text
    assert "--video_max_pixels" in text and "folder of frame images" in text
