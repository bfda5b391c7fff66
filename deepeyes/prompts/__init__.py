"""Prompt files: the system prompt that describes tools and wire format, the video addendum, and the user template."""

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


@cache
def _video_sections() -> tuple[str, dict[str, str]]:
    """``video_tools.txt`` as its opening line and one section per tool (``## <tool>`` headers)."""
    opening, *sections = (PROMPT_DIR / "video_tools.txt").read_text(encoding="utf-8").strip().split("\n## ")
    return opening.strip(), {name.strip(): body.strip() for name, body in (section.split("\n", 1) for section in sections)}


@cache
def video_tools_addendum(tools: frozenset[str] | None = None) -> str:
    """What a run with videos adds to the tool system prompt: that there are videos, then what
    each of ``tools`` (canonical names; None: every one) does with them: the kernel's
    ``video_k_frames`` / ``video_k_times`` (``code``), ``select_frames``, the frame zoom
    (``image_zoom_in_tool``). A tool that is off is not described, so the model is never
    invited to call it."""
    opening, sections = _video_sections()
    return "\n\n".join([opening, *(body for name, body in sections.items() if tools is None or name in tools)])


def video_system_prompt(prompt: str | None = None, tools: frozenset[str] | None = None) -> str:
    """The tool system prompt of a run whose request has videos: ``prompt`` (default the bundled
    :func:`system_prompt`) then :func:`video_tools_addendum` for the run's ``tools``.

    Why apart: the image-only prompt is in every SFT sequence and in the tiny model's tokenizer
    corpus, so it stays byte-identical; only runs with videos (and SFT samples with videos) get
    the frame tools described. A no-tool run keeps its no-tool prompt whatever its inputs.
    """
    return f"{system_prompt() if prompt is None else prompt}\n\n{video_tools_addendum(tools)}"
