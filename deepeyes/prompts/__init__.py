"""Prompt files: the system prompt that describes tools and wire format, and the user template."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from deepeyes.wire import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER

PROMPT_DIR = Path(__file__).resolve().parent


@cache
def system_prompt() -> str:
    return (PROMPT_DIR / "system_prompt.txt").read_text(encoding="utf-8").strip()


@cache
def user_template() -> str:
    return (PROMPT_DIR / "user_template.txt").read_text(encoding="utf-8").strip()


def user_prompt(question: str, image_count: int = 1, video_count: int = 0) -> str:
    """The first user turn: one ``<image>`` placeholder per input image, one ``<video>`` per
    input video (images first), then the question."""
    return IMAGE_PLACEHOLDER * image_count + VIDEO_PLACEHOLDER * video_count + "\n" + user_template().format(question=question)


@cache
def no_tool_system_prompt() -> str:
    return (PROMPT_DIR / "system_prompt_no_tools.txt").read_text(encoding="utf-8").strip()
