"""The frame tools are described to the model only in runs with videos: the image-only
system prompt (in every SFT sequence and the tiny model's tokenizer corpus) stays as it is,
and the video addendum's example calls are calls the parser runs."""

from __future__ import annotations

import re

from deepeyes import wire
from deepeyes.prompts import (
    no_tool_system_prompt,
    system_prompt,
    video_system_prompt,
    video_tools_addendum,
)


def test_the_image_only_prompts_say_nothing_of_videos() -> None:
    for prompt in (system_prompt(), no_tool_system_prompt()):
        assert "video" not in prompt.lower() and "select_frames" not in prompt


def test_a_video_run_gets_the_tool_prompt_then_the_frame_tools() -> None:
    prompt = video_system_prompt()
    assert prompt.startswith(system_prompt() + "\n\n") and prompt.endswith(video_tools_addendum())
    for name in ("video_k_frames", "video_k_times", "video_1_frames", "select_frames", "image_zoom_in_tool"):
        assert name in prompt, name
    # A custom system prompt (AgentConfig.system_prompt_path) gets the same addendum.
    assert video_system_prompt("Custom.") == "Custom.\n\n" + video_tools_addendum()


def test_every_example_call_in_the_addendum_parses_to_its_tool() -> None:
    blocks = re.findall(re.escape(wire.TOOL_CALL_OPEN) + ".*?" + re.escape(wire.TOOL_CALL_CLOSE), video_tools_addendum(), re.DOTALL)
    actions = [wire.parse_action(wire.think("x") + block) for block in blocks]
    assert [action.kind for action in actions] == ["select_frames", "select_frames", "image_zoom_in_tool"]
    assert [action.reason for action in actions] == [None, None, None]


def test_only_the_tools_a_run_may_call_are_described() -> None:
    """The shipped tool_manager_config.yaml leaves select_frames and the zoom off: a video run
    there is told of the kernel's frames only, never invited to call a tool that is off."""
    code_only = video_tools_addendum(frozenset({"code", "search", "image_search"}))
    assert "video_1_frames" in code_only and "select_frames" not in code_only and "image_zoom_in_tool" not in code_only
    frames_only = video_tools_addendum(frozenset({"select_frames"}))
    assert "select_frames" in frames_only and "video_k_frames" not in frames_only
    assert video_tools_addendum(frozenset()).startswith("This question also has videos") and "tool_call" not in video_tools_addendum(frozenset())
