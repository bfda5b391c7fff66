"""The demo page in a real headless chromium: chat with a scripted policy, the viewer, bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import ENDLESS_QUESTION, PLOT_QUESTION, SLOW_QUESTION, PageScript
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from deepeyes import wire
from deepeyes.agent import AgentLoop, AgentRequest
from deepeyes.demo.render import TrajectoryMedia
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import read_jsonl, write_jsonl

#: The table's visible rows (Gradio also renders a hidden copy of the first row to measure cells).
ROWS = '#viewer-table table:not([aria-hidden="true"]) tbody tr'


def wait_rows(page, count: int) -> None:
    page.wait_for_function("([rows, count]) => document.querySelectorAll(rows).length === count", arg=[ROWS, count])


def listed_files(page, selector: str, name: str):
    """The rows of a file component's table that hold ``name`` (uploaded and taken)."""
    return page.locator(f'{selector} table.file-preview td.filename[aria-label="{name}"]')


def upload(page, selector: str, path: Path, attempts: int = 3) -> None:
    """Choose ``path`` in the file input and wait until the component lists it.

    Gradio 5.50's upload widget sometimes drops a choice on a loaded machine: its progress
    view asks for ``upload_progress?upload_id=undefined`` (``Upload.svelte`` hands the view its
    own ``upload_id``, which a parameter of the same name in ``handle_upload`` shadows), gets a
    404, and the file that was sent may never be listed. The file is chosen again only after
    the page has reported that failure and then not listed it for 30 s, as a user would; an
    upload that is merely slow (over a minute on a loaded CI machine) is waited for, since
    choosing again then lists the file twice in a multi-file component. Listed means a row
    of the component's file table, not the name in its progress view, which shows it while
    the upload is still under way.
    """
    file_input = page.locator(f"{selector} input[type=file]")
    listed = listed_files(page, selector, path.name).first
    failed_at: list[float] = []

    def note_failure(response) -> None:
        if "/upload" in response.url and response.status >= 400:
            failed_at.append(time.monotonic())

    page.on("response", note_failure)
    try:
        for attempt in range(attempts):
            failed_at.clear()
            file_input.set_input_files(str(path))
            deadline = time.monotonic() + 180
            while not (failed_at and time.monotonic() > failed_at[0] + 30 and attempt < attempts - 1):
                try:
                    listed.wait_for(timeout=1_000)
                    return
                except PlaywrightTimeoutError:
                    if time.monotonic() > deadline:
                        raise
    finally:
        page.remove_listener("response", note_failure)


def open_options(page, selector: str):
    """Open a dropdown and return its options once they show.

    On a loaded CI machine a click on a dropdown whose choices had just arrived once opened no
    list for the page's whole timeout; the dropdown is closed and clicked again, as a user would.
    """
    options = page.get_by_role("option")
    deadline = time.monotonic() + 180
    while True:
        page.locator(f"{selector} input").click()
        try:
            options.first.wait_for(timeout=10_000)
            return options
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise
            page.keyboard.press("Escape")


def ask(page, question: str) -> None:
    page.locator("#chat-question textarea").fill(question)
    page.click("#chat-ask")


def test_chat_streams_a_code_call_with_its_figure_and_the_answer(page, sample_dir: Path, screenshot_dir: Path, tmp_path: Path) -> None:
    upload(page, "#chat-images", sample_dir / "images" / "eval_visual-00001.png")
    chosen = listed_files(page, "#chat-images", "eval_visual-00001.png").count()
    ask(page, PLOT_QUESTION)
    answer = page.wait_for_selector("#chat-output .de-answer")
    assert "The mean brightness is printed above." in answer.inner_text()
    code = page.locator("#chat-output .de-call-code")
    assert code.count() == 1 and "plt.hist(pixels.ravel(), bins=32)" in code.inner_text()
    assert code.locator("span").count() > 5  # highlighted: tokens wrapped in styled spans
    assert "mean brightness" in page.locator("#chat-output .de-stdout").inner_text()
    figure = page.locator("#chat-output img.de-figure")
    assert figure.count() == 1
    assert figure.evaluate("img => img.complete && img.naturalWidth > 100")  # a decoded PNG, not a broken image
    assert page.locator("#chat-output .de-input").count() == chosen  # every image the input held (1 unless the page took a re-chosen file too)
    page.screenshot(path=str(screenshot_dir / "chat_code_figure_answer.png"), full_page=True)
    live_html = page.locator("#chat-output .de-trajectory").evaluate("node => node.outerHTML")

    with page.expect_download() as download_info:
        page.click("#chat-download")
    saved = tmp_path / "demo_trajectory.jsonl"
    download_info.value.save_as(saved)
    (trajectory,) = read_jsonl(saved)  # validates against the shared schema
    assert trajectory.final_answer == "The mean brightness is printed above." and trajectory.tool_calls.code == 1
    assert len(TrajectoryMedia.of(trajectory).observations[0]) == 1

    # The downloaded file, opened in the viewer, renders exactly like the live page.
    page.get_by_role("tab", name="Trajectory viewer").click()
    upload(page, "#viewer-file", saved)
    page.wait_for_selector("#viewer-status .de-message-info")
    open_options(page, "#viewer-pick").first.click()
    page.wait_for_selector("#viewer-output .de-trajectory")
    assert page.locator("#viewer-output .de-trajectory").evaluate("node => node.outerHTML") == live_html


def _eval_file(tool_manager: ToolManager, image: Path, path: Path) -> None:
    """Three trajectories as evaluation writes them (dataset, category, reward) plus one broken line."""
    search_turns = [wire.think("look it up") + wire.text_search_action("Quondquouth Lighthouse city"), wire.answer_action("Paris")]
    code_turns = [wire.think("count with code") + wire.code_action("print(3 + 2)"), wire.answer_action("5")]
    plain_turns = [wire.think("easy") + wire.answer_action("circle")]
    rows = [
        ("DeepEyesMini_Search", "text_search", search_turns, 0.0),
        ("DeepEyesMini_Visual", "counting", code_turns, 1.0),
        ("DeepEyesMini_Visual", "no_tool", plain_turns, 1.0),
    ]
    trajectories = []
    for i, (dataset, category, turns, accuracy) in enumerate(rows):
        request = AgentRequest(question=f"question {i}", images=[str(image)], id=f"{dataset}-{i}", data_source=dataset, metadata={"dataset": dataset, "category": category})
        trajectory = AgentLoop(tool_manager).rollout(ScriptedPolicy(turns), request).trajectory
        trajectory.reward = {"score": accuracy, "accuracy": accuracy}
        trajectories.append(trajectory)
    write_jsonl(path, trajectories, append=False)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("this line is not JSON\n")
        handle.write(json.dumps({"id": "x"}) + "\n")


def test_viewer_filters_a_trajectory_file_and_opens_one(page, demo_tool_manager: ToolManager, sample_dir: Path, screenshot_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "eval_trajectories.jsonl"
    _eval_file(demo_tool_manager, sample_dir / "images" / "eval_search-00002.png", path)
    page.get_by_role("tab", name="Trajectory viewer").click()
    upload(page, "#viewer-file", path)
    notice = page.wait_for_selector("#viewer-status .de-message-note")
    assert "2 line(s) skipped" in notice.inner_text() and "line 4: not JSON" in notice.inner_text()
    assert "Loaded 3 trajectories" in page.locator("#viewer-status").inner_text()
    rows = page.locator(ROWS)
    rows.nth(2).wait_for()
    assert rows.count() == 3

    page.locator("#viewer-correctness").get_by_text("incorrect", exact=True).click()
    wait_rows(page, 1)
    assert "DeepEyesMini_Search" in rows.first.inner_text()
    options = open_options(page, "#viewer-pick")
    assert options.count() == 1
    options.first.click()
    search = page.wait_for_selector("#viewer-output .de-call-search")
    assert "Quondquouth Lighthouse city" in search.inner_text()
    results = page.locator("#viewer-output .de-results li")
    assert results.count() >= 1 and results.first.locator(".de-title").inner_text().strip()
    assert "Paris" in page.locator("#viewer-output .de-answer").inner_text()
    page.screenshot(path=str(screenshot_dir / "viewer_search_trajectory.png"), full_page=True)

    page.locator("#viewer-correctness").get_by_text("all", exact=True).click()
    wait_rows(page, 3)
    page.locator("#viewer-tools").get_by_text("code", exact=True).click()
    wait_rows(page, 1)
    assert "counting" in rows.first.inner_text()


def test_an_empty_question_gets_a_message(page) -> None:
    ask(page, "   ")
    assert "Please type a question." in page.wait_for_selector("#chat-status .de-message-error").inner_text()
    assert "Traceback" not in page.content()


def test_a_text_file_gets_a_message_not_a_trace(page, screenshot_dir: Path, tmp_path: Path) -> None:
    # On a page of its own, apart from the empty question: each check starts from a fresh page.
    notes = tmp_path / "notes.txt"
    notes.write_text("just some text, not a picture\n", encoding="utf-8")
    upload(page, "#chat-images", notes)
    ask(page, "What is in this picture?")
    page.wait_for_function("document.querySelector('#chat-status .de-message-error')?.innerText.includes('notes.txt')")
    message = page.locator("#chat-status .de-message-error").inner_text()
    assert "is not an image" in message
    assert "Traceback" not in page.content()
    assert page.locator("#chat-output .de-trajectory").count() == 0
    page.screenshot(path=str(screenshot_dir / "chat_text_file_error.png"), full_page=True)


def test_stop_ends_the_trajectory_between_turns(page, sample_dir: Path, screenshot_dir: Path) -> None:
    upload(page, "#chat-images", sample_dir / "images" / "eval_visual-00004.png")
    ask(page, SLOW_QUESTION)
    page.wait_for_selector("#chat-output .de-turn[data-turn='2']")
    page.click("#chat-stop")
    footer = page.wait_for_selector("#chat-output .de-footer")
    assert "stopped by the user" in footer.inner_text()
    assert page.locator("#chat-output .de-turn").count() < 8  # the page's default turn limit
    page.screenshot(path=str(screenshot_dir / "chat_stopped.png"), full_page=True)


def test_closing_the_page_ends_its_run(browser, demo_url: str, page_script: PageScript, sample_dir: Path) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(180_000)  # loaded CI boxes
    page.goto(demo_url)
    page.wait_for_selector("#chat-ask")
    number = page.locator("#chat-max-turns input[type=number]")
    number.fill("32")
    number.press("Enter")
    upload(page, "#chat-images", sample_dir / "images" / "eval_visual-00004.png")
    ask(page, ENDLESS_QUESTION)
    page.wait_for_selector("#chat-output .de-turn[data-turn='2']")
    context.close()
    # The run notices at its next turn boundary; wait until no turn has been written for 3 s.
    deadline, previous = time.monotonic() + 120, -1
    while page_script.endless_turns != previous:
        assert time.monotonic() < deadline, "the run kept going after its page closed"
        previous = page_script.endless_turns
        time.sleep(3)
    assert previous < 8  # the page asked for 32 turns (8 if the slider had not taken); it stops near turn 3


def test_two_users_at_once_both_get_their_answer(browser, demo_url: str, sample_dir: Path) -> None:
    contexts = [browser.new_context() for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    for page in pages:
        page.set_default_timeout(180_000)  # loaded CI boxes
        page.goto(demo_url)
        page.wait_for_selector("#chat-ask")
        upload(page, "#chat-images", sample_dir / "images" / "eval_visual-00001.png")
        page.locator("#chat-question textarea").fill(PLOT_QUESTION)
    for page in pages:
        page.click("#chat-ask")
    for page in pages:
        assert "The mean brightness is printed above." in page.wait_for_selector("#chat-output .de-answer").inner_text()
        assert page.locator("#chat-output img.de-figure").count() == 1
    for context in contexts:
        context.close()
