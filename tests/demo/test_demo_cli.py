"""``python demo/gradio_demo.py`` as a user starts it: from another directory, on the tiny model, answering in the browser."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import free_port
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from deepeyes.paths import REPO_ROOT


def test_help_lists_the_documented_flags() -> None:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "demo" / "gradio_demo.py"), "--help"], capture_output=True, text=True, timeout=120, check=True)
    for flag in ("--model_path", "--adapter", "--api_base", "--served_model", "--tool_manager_config", "--host", "--port", "--max_turns", "--share"):
        assert flag in result.stdout


@pytest.mark.redis
def test_default_start_serves_the_tiny_model_and_answers(browser, sample_dir: Path, screenshot_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "demo" / "gradio_demo.py"), "--port", str(port)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the demo did not come up"
            time.sleep(1)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(300_000)
        page.goto(url)
        page.wait_for_selector("#chat-ask")
        assert "tiny-qwen2.5-vl" in page.inner_text("body")
        image = sample_dir / "images" / "eval_visual-00001.png"
        # A page still hydrating can drop the first file it is given (seen under a loaded full run,
        # never alone): give it again rather than wait out the whole timeout.
        for attempt in range(3):
            page.locator("#chat-images input[type=file]").set_input_files(str(image))
            try:
                page.locator("#chat-images").get_by_text(image.name).first.wait_for(timeout=60_000)
                break
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
        # The random tiny model writes no tags; one short turn keeps this test quick on a loaded CPU.
        for slider, value in (("#chat-max-turns", "1"), ("#chat-max-new-tokens", "16")):
            number = page.locator(f"{slider} input[type=number]")
            number.fill(value)
            number.press("Enter")
        page.locator("#chat-question textarea").fill("How many yellow squares can you see?")
        page.click("#chat-ask")
        footer = page.wait_for_selector("#chat-output .de-footer")  # the trajectory ended (answer or turn limit)
        assert "turn(s)" in footer.inner_text()
        assert page.locator("#chat-output .de-turn").count() == 1  # the page's turn limit reached the loop
        assert page.locator("#chat-status .de-message-error").count() == 0
        page.screenshot(path=str(screenshot_dir / "cli_tiny_model.png"), full_page=True)
        page.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "demo.log").read_text()
