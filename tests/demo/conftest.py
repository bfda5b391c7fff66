"""The demo page served for real (Gradio on loopback) and driven by Debian's chromium through Playwright.

The chat runs a scripted policy so its output is deterministic; the tools are the real
tool manager (a sandbox instance with Jupyter kernels and Redis on loopback).
Screenshots go to ``outputs/demo_screenshots/`` (or ``$DEEPEYES_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepeyes import wire
from deepeyes.chat import Message
from deepeyes.paths import REPO_ROOT
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager, ToolManagerConfig

PLOT_QUESTION = "What is the mean brightness of the image? Plot its histogram."
PLOT_CODE = (
    "import numpy as np\nimport matplotlib.pyplot as plt\n"
    "pixels = np.asarray(image_1.convert('L'))\n"
    "print('mean brightness', round(float(pixels.mean()), 1))\n"
    "plt.hist(pixels.ravel(), bins=32)\nplt.title('brightness')\nplt.show()"
)
SLOW_QUESTION = "Count slowly."
ENDLESS_QUESTION = "Keep counting until I leave."
SCRIPT = {
    PLOT_QUESTION: [
        wire.think("I will measure the brightness with code and look at the histogram.") + wire.code_action(PLOT_CODE),
        wire.think("The histogram is shown; the mean was printed.") + wire.answer_action("The mean brightness is printed above."),
    ],
    SLOW_QUESTION: [wire.think(f"step {i}") + wire.code_action(f"x = {i}\nprint(x)") for i in range(20)],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    folder = Path(os.environ.get("DEEPEYES_SCREENSHOT_DIR", REPO_ROOT / "outputs" / "demo_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def demo_tool_manager(tool_config: Callable[..., ToolManagerConfig]) -> Iterator[ToolManager]:
    """Every tool, on the session's sandbox instance and Redis."""
    with ToolManager(config=tool_config()) as manager:
        yield manager


class PageScript:
    """The scripted turns by question; counts the turns written for :data:`ENDLESS_QUESTION`."""

    def __init__(self) -> None:
        self.endless_turns = 0

    def __call__(self, messages: list[Message]) -> str:
        question = next(m.content for m in messages if m.role == "user").replace(wire.IMAGE_PLACEHOLDER, "").strip()
        position = sum(1 for m in messages if m.role == "assistant")
        if question == ENDLESS_QUESTION:
            self.endless_turns += 1
            time.sleep(0.5)
            return wire.think(f"turn {position}") + wire.code_action(f"n = {position}")
        turns = SCRIPT[question]
        return turns[position] if position < len(turns) else ""


@pytest.fixture(scope="session")
def page_script() -> PageScript:
    return PageScript()


@pytest.fixture(scope="session")
def scripted_policy(page_script: PageScript) -> ScriptedPolicy:
    return ScriptedPolicy(page_script, latency_s=0.2)


@pytest.fixture(scope="session")
def demo_url(scripted_policy: ScriptedPolicy, demo_tool_manager: ToolManager, sample_dir: Path) -> Iterator[str]:
    from deepeyes.demo.app import DemoOptions, build_app, sample_examples

    app = build_app(scripted_policy, demo_tool_manager, DemoOptions(model_label="scripted policy", examples=sample_examples(sample_dir)))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Module scope, not session: Playwright's sync API runs an event loop in the main thread
    until it stops, and tests collected after the demo's (asyncio.run in verl's agent loop) need it gone."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed: run setup.sh (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, demo_url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(180_000)  # loaded CI boxes
    page.goto(demo_url)
    page.wait_for_selector("#chat-ask")
    yield page
    context.close()
