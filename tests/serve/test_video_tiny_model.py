"""A video request answered by the tiny Qwen2.5-VL: its frames enter the model's prompt as video tokens."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from serve_helpers import Served, serve
from video_media import write_mp4

from deepeyes.model_args import ModelArguments, ToolArguments
from deepeyes.serve import ServeConfig
from deepeyes.trajectory import validate


@pytest.fixture(scope="module")
def tiny_no_tools(tiny_model_dir: Path) -> Iterator[Served]:
    """The service on the tiny model, without tools (one direct turn per question, no sandbox)."""
    config = ServeConfig(model=ModelArguments(model_path=str(tiny_model_dir), max_new_tokens=4), tools=ToolArguments(use_tools=False))
    with serve(config) as served:
        yield served


def test_a_video_reaches_the_tiny_model_as_video_tokens(tiny_no_tools: Served, tmp_path: Path) -> None:
    clip = write_mp4(tmp_path / "square.mp4", count=8, fps=4)
    url = "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()
    client = openai.OpenAI(base_url=tiny_no_tools.base_url, api_key="unused", max_retries=0, timeout=300)

    def ask(*parts: dict) -> openai.types.chat.ChatCompletion:
        messages = [{"role": "user", "content": [*parts, {"type": "text", "text": "Which way does the square move?"}]}]
        return client.chat.completions.create(model="deepeyes", messages=messages, max_tokens=4)

    with_video = ask({"type": "video_url", "video_url": {"url": url}})
    without = ask()
    trajectory = with_video.model_extra["trajectory"]
    validate(trajectory)
    assert trajectory["videos"] == [{"source": f"data:video/mp4 ({clip.stat().st_size} bytes)", "frames": 4}]
    assert len(trajectory["turns"]) == 1 and with_video.usage.completion_tokens > 0
    # 4 frames make two temporal patches, each at least a 2x2 grid of 28 px cells after the processor's
    # resize: at least 8 video tokens more in the prompt the model was given (counted from its input ids).
    assert with_video.usage.prompt_tokens - without.usage.prompt_tokens >= 8
