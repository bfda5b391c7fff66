"""A video on the demo page in a real headless chromium: uploaded, sampled by the page's sliders, frames selected by the tool.

The page runs its own scripted policy (the shared page's script is keyed by image questions):
it asks ``select_frames`` for two frames, then answers with the frame count it was given, so
the page's settings are checked against what reached the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from test_browser import ask, upload
from video_media import write_mp4

from deepeyes import wire
from deepeyes.chat import Message, all_videos
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager

QUESTION = "Which way does the square move?"


def video_script(messages: list[Message]) -> str:
    if sum(m.role == "assistant" for m in messages) == 0:
        return wire.think("Let me look at two frames.") + wire.tool_call_action("select_frames", {"video": 1, "indices": [0, 3]})
    frames = [len(clip.frames) for clip in all_videos(messages)]
    return wire.think("It moved right.") + wire.answer_action(f"right (I was given {frames} frames)")


@pytest.fixture(scope="module")
def video_demo_url(demo_tool_manager: ToolManager) -> Iterator[str]:
    from deepeyes.demo.app import DemoOptions, build_app

    app = build_app(ScriptedPolicy(video_script, latency_s=0.2), demo_tool_manager, DemoOptions(model_label="scripted video policy"))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture()
def video_page(browser, video_demo_url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)  # loaded CI boxes
    page.goto(video_demo_url)
    page.wait_for_selector("#chat-ask")
    yield page
    context.close()


def set_slider(page, selector: str, value: str) -> None:
    number = page.locator(f"{selector} input[type=number]")
    number.fill(value)
    number.press("Enter")


@pytest.mark.browser
def test_a_video_upload_runs_with_the_page_sampling_and_shows_the_selected_frames(video_page, tmp_path: Path, screenshot_dir: Path) -> None:
    clip = write_mp4(tmp_path / "square.mp4", count=8, fps=4)  # 2 s
    upload(video_page, "#chat-videos", clip)
    set_slider(video_page, "#chat-video-fps", "4")
    set_slider(video_page, "#chat-video-max-frames", "6")
    ask(video_page, QUESTION)
    answer = video_page.wait_for_selector("#chat-output .de-answer")
    assert "right (I was given [6] frames)" in answer.inner_text()  # the sliders reached the loop
    assert video_page.locator("#chat-output .de-frame-count").inner_text() == "6 frames"
    assert video_page.locator("#chat-output .de-video-name").inner_text() == "square.mp4"
    assert video_page.locator("#chat-output img.de-frame").count() == 6
    selected = video_page.locator("#chat-output img.de-selected-frame")
    assert selected.count() == 2
    assert selected.first.evaluate("img => img.complete && img.naturalWidth === 64")  # a decoded frame at the video's size
    assert "Frame 3 of video 1" in video_page.locator("#chat-output .de-selected-frames").inner_text()
    assert video_page.locator("#chat-status .de-message-error").count() == 0
    video_page.screenshot(path=str(screenshot_dir / "chat_video_selected_frames.png"), full_page=True)


@pytest.mark.browser
def test_a_file_that_is_not_a_video_gets_a_message_on_the_page(video_page, tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_bytes(b"not a video" * 100)
    upload(video_page, "#chat-videos", junk)
    ask(video_page, QUESTION)
    error = video_page.wait_for_selector("#chat-status .de-message-error")
    assert error.inner_text().startswith("“notes.mp4” is not a video this demo can read")
    assert video_page.locator("#chat-output .de-turn").count() == 0
