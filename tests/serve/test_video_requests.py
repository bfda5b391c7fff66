"""``video_url`` content parts through the official OpenAI client: decoded once, seen by the policy, named in the trajectory.

The service runs without tools (no sandbox needed) and with a policy that answers with what
it received: the number of videos, and the frame count and last timestamp of each. So a
test sees the frames that reached the model, not only the service's own account of them.
"""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from serve_helpers import Served, serve
from video_media import write_frames, write_mp4

from deepeyes import wire
from deepeyes.chat import Message, all_videos
from deepeyes.model_args import ToolArguments
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.openai import OpenAIPolicy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.serve import ServeConfig
from deepeyes.serve import app as serve_app
from deepeyes.serve.backend import Backend
from deepeyes.trajectory import validate
from deepeyes.videos import load_video

NO_TOOLS = ToolArguments(use_tools=False)


def describe_videos(messages: list[Message]) -> str:
    """The policy's answer: ``<n> video(s): <frames>@<last time>s, …``."""
    videos = all_videos(messages)
    seen = ", ".join(f"{len(clip.frames)}@{clip.timestamps[-1]:.2f}s" for clip in videos)
    return wire.think("Counting what I was given.") + wire.answer_action(f"{len(videos)} video(s): {seen}")


class VideoEchoBackend(Backend):
    """The service's backend with the policy replaced by :func:`describe_videos`."""

    def __init__(self, config: ServeConfig) -> None:
        super().__init__(config)
        self.policy = ScriptedPolicy(describe_videos)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 frames at 4 fps: 2 s of a square moving right."""
    return write_mp4(tmp_path_factory.mktemp("video") / "square.mp4", count=8, fps=4)


@pytest.fixture(scope="module")
def echo_service(script_file: Path) -> Iterator[Iterator[Served]]:
    """A factory of services (``ServeConfig`` fields as keywords) whose policy is :func:`describe_videos`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serve_app, "Backend", VideoEchoBackend)

        def start(**fields):
            return serve(ServeConfig(script_path=str(script_file), tools=NO_TOOLS, **fields))

        yield start


@pytest.fixture(scope="module")
def served(echo_service) -> Iterator[Served]:
    with echo_service(max_video_s=10.0) as service:
        yield service


def client_of(service: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=service.base_url, api_key="unused", max_retries=0, timeout=120)


def data_url(path: Path) -> str:
    return "data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode()


def ask(question: str, *video_urls: str) -> list[dict]:
    parts = [{"type": "video_url", "video_url": {"url": url}} for url in video_urls]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]


def test_a_data_uri_video_reaches_the_policy_and_the_trajectory_names_its_frames(served: Served, clip: Path) -> None:
    completion = client_of(served).chat.completions.create(model="deepeyes", messages=ask("Where does the square go?", data_url(clip)))
    # 2 s at the default 2 fps: 4 frames, the last one the file's last (7 / 4 fps = 1.75 s).
    assert completion.choices[0].message.content == "1 video(s): 4@1.75s"
    trajectory = completion.model_extra["trajectory"]
    validate(trajectory)
    assert trajectory["videos"] == [{"source": f"data:video/mp4 ({clip.stat().st_size} bytes)", "frames": 4}]


def test_per_request_sampling_keeps_more_frames(served: Served, clip: Path) -> None:
    completion = client_of(served).chat.completions.create(
        model="deepeyes", messages=ask("Every frame, please.", data_url(clip)), extra_body={"video_sampling": {"fps": 4}}
    )
    assert completion.choices[0].message.content == "1 video(s): 8@1.75s"
    assert completion.model_extra["trajectory"]["videos"][0]["frames"] == 8


def test_generate_mode_puts_the_video_where_the_part_was(served: Served, clip: Path) -> None:
    """A client-side loop's turn: the conversation as given, one <video> placeholder in place of the part."""
    completion = client_of(served).chat.completions.create(
        model="deepeyes", messages=ask("Describe it.", data_url(clip)), stop=["</answer>"],
        extra_body={"video_sampling": {"max_frames": 3}},
    )
    assert "1 video(s): 3@1.75s" in completion.choices[0].message.content
    assert completion.model_extra.get("trajectory") is None


def test_undecodable_video_is_a_400_naming_the_part(served: Served) -> None:
    junk = "data:video/mp4;base64," + base64.b64encode(b"this is not a video at all" * 40).decode()
    with pytest.raises(openai.BadRequestError) as caught:
        client_of(served).chat.completions.create(model="deepeyes", messages=ask("What is it?", junk))
    error = caught.value.body
    assert error["code"] == "invalid_video" and error["param"] == "messages[0].content[0].video_url"
    assert error["message"].startswith("the video could not be decoded: data:video/mp4 (1040 bytes): cannot decode")


def test_bad_base64_and_a_non_video_data_uri_are_400s(served: Served) -> None:
    client = client_of(served)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("?", "data:video/mp4;base64,%%%not-base64%%%"))
    assert caught.value.body["code"] == "invalid_video" and "not valid base64" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("?", "data:image/png;base64,AAAA"))
    assert caught.value.body["code"] == "invalid_video_url" and "data:video/<type>" in caught.value.body["message"]


def test_a_video_longer_than_the_limit_is_refused_before_decoding(echo_service, clip: Path) -> None:
    with echo_service(max_video_s=1.5) as strict, pytest.raises(openai.BadRequestError) as caught:
        client_of(strict).chat.completions.create(model="deepeyes", messages=ask("Too long?", data_url(clip)))
    error = caught.value.body
    assert error["code"] == "video_too_long"
    assert error["message"] == "the video plays for 2.0 s; this service accepts videos of at most 1.5 s"


def test_limits_on_video_count_and_frames(served: Served, clip: Path) -> None:
    client = client_of(served)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("Three?", *[data_url(clip)] * 3))
    assert caught.value.body["code"] == "too_many_videos"
    assert caught.value.body["message"] == "3 videos in the request; this service accepts at most 2"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="deepeyes", messages=ask("Many frames?", data_url(clip)), extra_body={"video_sampling": {"max_frames": 65}}
        )
    assert caught.value.body["code"] == "invalid_value" and caught.value.body["param"] == "video_sampling.max_frames"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="deepeyes", messages=ask("Zero fps?", data_url(clip)), extra_body={"video_sampling": {"fps": 0}}
        )
    assert caught.value.body["code"] == "invalid_request"


def test_two_videos_in_order(served: Served, clip: Path, tmp_path: Path) -> None:
    short = write_mp4(tmp_path / "short.mp4", count=4, fps=4)  # 1 s: 2 frames at 2 fps
    completion = client_of(served).chat.completions.create(model="deepeyes", messages=ask("Compare.", data_url(clip), data_url(short)))
    assert completion.choices[0].message.content == "2 video(s): 4@1.75s, 2@0.75s"
    assert [video["frames"] for video in completion.model_extra["trajectory"]["videos"]] == [4, 2]


def test_local_videos_only_where_the_service_allows_local_files(served: Served, echo_service, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_of(served).chat.completions.create(model="deepeyes", messages=ask("Local?", clip.as_uri()))
    assert caught.value.body["code"] == "invalid_video_url" and "--allow_local_images" in caught.value.body["message"]
    frames = tmp_path / "frames"
    write_frames(frames, count=6)
    with echo_service(allow_local_images=True) as trusting:
        client = client_of(trusting)
        completion = client.chat.completions.create(model="deepeyes", messages=ask("Local file.", clip.as_uri()))
        assert completion.model_extra["trajectory"]["videos"] == [{"source": clip.as_uri(), "frames": 4}]
        # A folder of frames is a video too (frame i at i / fps seconds).
        completion = client.chat.completions.create(model="deepeyes", messages=ask("Frames.", str(frames)))
        assert completion.choices[0].message.content == "1 video(s): 6@2.50s"
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="deepeyes", messages=ask("Missing.", str(tmp_path / "absent.mp4")))
        assert caught.value.body["code"] == "invalid_video" and "video not found" in caught.value.body["message"]


@pytest.fixture(scope="module")
def video_site(clip: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving the clip as ``/square.mp4``."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(clip.parent), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_videos_follow_the_image_fetch_rules(served: Served, echo_service, video_site: str) -> None:
    url = f"{video_site}/square.mp4"
    with pytest.raises(openai.BadRequestError) as caught:
        client_of(served).chat.completions.create(model="deepeyes", messages=ask("Remote?", url))
    assert caught.value.body["code"] == "invalid_video_url" and "--allow_private_image_urls" in caught.value.body["message"]
    with echo_service(allow_private_image_urls=True) as trusting:
        completion = client_of(trusting).chat.completions.create(model="deepeyes", messages=ask("Remote.", url))
    assert completion.choices[0].message.content == "1 video(s): 4@1.75s"
    assert completion.model_extra["trajectory"]["videos"] == [{"source": url, "frames": 4}]


def test_the_openai_policy_video_part_round_trips_through_the_service(served: Served, tmp_path: Path) -> None:
    """What the demo, infer and evaluation send with ``--api_base`` pointing here: the clip as an MP4 data URL, generate mode."""
    clip = load_video(write_frames(tmp_path / "frames", count=6))  # frame i at i / 2 s
    messages = [Message("system", "You are a test."), Message("user", wire.VIDEO_PLACEHOLDER + "\nWhich way?", videos=[clip])]
    generation = OpenAIPolicy(served.base_url, "deepeyes").generate(messages, SamplingParams(max_new_tokens=64))
    # Re-decoded by the service at its default 2 fps: the same 6 frames at the same times.
    assert "1 video(s): 6@2.50s" in generation.text
