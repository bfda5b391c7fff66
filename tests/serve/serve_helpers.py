"""Helpers of the service tests: a scripted conversation set, and the service run with uvicorn on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from deepeyes import wire
from deepeyes.serve import ServeConfig, create_app
from deepeyes.tool_manager import ToolManager
from deepeyes.utils.processes import free_port

FIGURE_CODE = "display(image_1.resize((40, 30)))\nprint(image_1.size)"

#: Question -> the assistant turns the scripted policy replays for it.
SCRIPT: dict[str, list[str]] = {
    "plain": [wire.think("The answer is visible.") + wire.answer_action("42")],
    "figure": [
        wire.think("Let me look closer.") + wire.code_action(FIGURE_CODE),
        wire.think("The crop shows it.") + wire.answer_action("a red square"),
    ],
    "search": [
        wire.think("I need facts.") + wire.text_search_action("red square"),
        wire.think("Found it.") + wire.answer_action("found"),
    ],
    "slow": [
        wire.think("This takes a while.") + wire.code_action("import time\ntime.sleep(4)"),
        wire.think("And a while more.") + wire.code_action("time.sleep(4)\nprint('second')"),
        wire.think("Done.") + wire.answer_action("slow"),
    ],
}


@dataclass
class Served:
    """A running service: its base URL (``…/v1``), its app, and its configuration."""

    base_url: str
    root: str
    app: FastAPI
    config: ServeConfig


@contextlib.contextmanager
def serve(config: ServeConfig, tools: ToolManager | None = None) -> Iterator[Served]:
    """Run ``create_app(config)`` with uvicorn on a free loopback port until the block ends."""
    config = dataclasses.replace(config, port=free_port())
    app = create_app(config, tool_manager=tools)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the inference service did not start")
        time.sleep(0.05)
    root = f"http://127.0.0.1:{config.port}"
    try:
        yield Served(base_url=f"{root}/v1", root=root, app=app, config=config)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def sandbox_sessions(tools: ToolManager) -> int:
    """Live kernel sessions over all sandbox instances."""
    return sum(report["sessions"] for report in tools.sandbox_client.health().values() if report)


def wait_for(check, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
