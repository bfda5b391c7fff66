"""Evaluation, the demo and the service leave no process behind when they are killed.

Issue 30, item 9: a demo stopped with SIGTERM left its ``redis-server`` running, reparented to
init. Each front end here is started as a user starts it, with a tool configuration that makes
it start its own Redis and sandbox; once those run, the front end is killed (SIGKILL, or SIGTERM
as an operator stops it) and every process it started must be gone within a few seconds, its
ports closed (:mod:`process_watch`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from flask import Flask, jsonify, request
from process_watch import Watched, start
from werkzeug.serving import make_server

from deepeyes.paths import REPO_ROOT, SAMPLE_DIR
from deepeyes.utils.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.redis]

#: What each front end must have started before it is killed (command-line fragments).
SERVICES = ("redis-server", "deepeyes.sandbox.server")
#: Seconds the services may take to follow their starter (a sandbox server shuts its kernels down).
GRACE_S = 15.0
CODE_CALL = "<think>count</think>\n<code>\n```python\nimport time\ntime.sleep(1)\nprint(4)\n```\n</code>"


@pytest.fixture()
def code_tools(tmp_path: Path) -> Path:
    """A tool configuration with only the code tool, one warm kernel, Redis and sandbox started on demand."""
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump({"tools": {"enabled": ["code"]}, "sandbox": {"pool_size": 1}}), encoding="utf-8")
    return path


def _assert_nothing_left(watched: Watched, how: str) -> None:
    survivors = watched.survivors(GRACE_S)
    assert not survivors, f"still running {GRACE_S:.0f} s after {how}: {survivors}"
    assert not watched.open_ports(), f"ports still open after {how}: {watched.open_ports()}"


@pytest.fixture()
def coding_model() -> Iterator[tuple[str, list[dict]]]:
    """An OpenAI-compatible stand-in whose every turn is a code call (so the tools start and stay busy)."""
    seen: list[dict] = []
    app = Flask("coding-standin")

    @app.post("/v1/chat/completions")
    def complete():
        seen.append(request.get_json())
        message = {"role": "assistant", "content": CODE_CALL}
        return jsonify({"choices": [{"message": message, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 9}})

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", seen
    server.shutdown()
    thread.join()


def test_killed_evaluation_leaves_no_service(tmp_path: Path, code_tools: Path, coding_model) -> None:
    """The tool manager starts on the first code call, from an evaluation worker thread."""
    api_base, seen = coding_model
    argv = [sys.executable, "-m", "deepeyes.evaluation", "--api_base", api_base, "--served_model", "standin",
            "--datasets", "DeepEyesMini_Visual", "--lmudata", str(SAMPLE_DIR / "eval"), "--max_samples", "1",
            "--output_dir", str(tmp_path / "out"), "--tool_manager_config", str(code_tools), "--max_turns", "50",
            "--no_report", "--log_level", "INFO"]  # fmt: skip
    watched = start(argv, tmp_path / "eval.log", env={"PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path)
    try:
        # A second request carries the first call's result: Redis and the sandbox served it.
        watched.wait_for(lambda w: len(seen) >= 2 and w.has(*SERVICES), 300, "code call answered")
        watched.end(signal.SIGKILL)
        _assert_nothing_left(watched, "kill -9 of the evaluation")
    finally:
        watched.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_stopped_service_leaves_no_service(tmp_path: Path, code_tools: Path, signum: int) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(["<answer>4</answer>"]), encoding="utf-8")
    port = free_port()
    argv = [sys.executable, "-m", "deepeyes.serve", "--script_path", str(script), "--tool_manager_config", str(code_tools),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    watched = start(argv, tmp_path / "serve.log", env={"PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)
    try:
        watched.wait_for(lambda w: _answers(f"http://127.0.0.1:{port}/health") and w.has(*SERVICES), 300, "service ready")
        watched.end(signum)
        _assert_nothing_left(watched, f"{signal.Signals(signum).name} of the service")
    finally:
        watched.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_stopped_demo_leaves_no_service(tmp_path: Path, code_tools: Path, signum: int) -> None:
    port = free_port()
    argv = [sys.executable, str(REPO_ROOT / "demo" / "gradio_demo.py"), "--port", str(port), "--tool_manager_config", str(code_tools)]
    watched = start(argv, tmp_path / "demo.log", cwd=tmp_path)
    try:
        watched.wait_for(lambda w: _answers(f"http://127.0.0.1:{port}") and w.has(*SERVICES), 300, "demo page")
        watched.end(signum)
        _assert_nothing_left(watched, f"{signal.Signals(signum).name} of the demo")
    finally:
        watched.cleanup()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
