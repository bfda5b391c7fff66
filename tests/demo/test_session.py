"""Chat runs without a browser: input checks, tool switches, Stop, and live/file rendering parity."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from deepeyes import wire
from deepeyes.demo.render import STOPPED_BY_USER, TrajectoryMedia, render_trajectory
from deepeyes.demo.session import (
    QWEN_MAX_PIXELS,
    ChatRun,
    ChatSessions,
    InputError,
    RunSettings,
    prepare_input,
)
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.openai import OpenAIPolicy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import read_jsonl, write_jsonl


def _png(path: Path, size: tuple[int, int], colour=(200, 30, 30)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _finish(run: ChatRun):
    updates = list(run.updates())
    assert updates[-1].done and all(not u.done for u in updates[:-1])
    return updates


def test_prepare_input_rejects_blank_questions_text_files_and_corrupt_images(tmp_path: Path) -> None:
    image = _png(tmp_path / "ok.png", (40, 30))
    with pytest.raises(InputError, match="type a question"):
        prepare_input([str(image)], "  \n ")
    text = tmp_path / "notes.txt"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(InputError, match="“notes.txt” is not an image"):
        prepare_input([str(image), str(text)], "q")
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(image.read_bytes()[:60])  # a PNG cut off in its first chunk
    with pytest.raises(InputError, match="“broken.png” is not an image"):
        prepare_input([str(corrupt)], "q")
    prepared = prepare_input([str(image)], "  what colour?  ")
    assert prepared.question == "what colour?" and prepared.images[0].size == (40, 30) and prepared.notes == []


def test_a_too_large_image_is_resized_onto_the_qwen_grid_with_a_note(tmp_path: Path) -> None:
    big = _png(tmp_path / "big.png", (5000, 3000))
    prepared = prepare_input([str(big)], "q")
    width, height = prepared.images[0].size
    assert width * height <= QWEN_MAX_PIXELS and width % 28 == 0 and height % 28 == 0
    assert abs(width / height - 5000 / 3000) < 0.02
    assert len(prepared.notes) == 1 and "5000×3000" in prepared.notes[0] and f"{width}×{height}" in prepared.notes[0]
    # Within the hard limit but above the model's own: a note only, the upload is kept.
    medium = _png(tmp_path / "medium.png", (400, 320))
    kept = prepare_input([str(medium)], "q", model_max_pixels=50176)
    assert kept.images[0].size == (400, 320) and "downscaled" in kept.notes[0]


def test_an_image_too_large_to_decode_safely_gets_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _png(tmp_path / "bomb.png", (300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses images over twice this
    with pytest.raises(InputError, match="too large to open safely"):
        prepare_input([str(path)], "q")


def test_the_page_settings_travel_on_the_request_and_the_shared_policy_is_untouched() -> None:
    policy = ScriptedPolicy([wire.answer_action("x")])
    run = ChatRun(policy, None, prepare_input(None, "q"), RunSettings(temperature=0.7, max_new_tokens=64, max_turns=3))
    assert run.policy is policy and (run.request.max_turns, run.request.cancel) == (3, run.stop_event)
    _finish(run)
    assert policy.samplings == [SamplingParams(temperature=0.7, max_new_tokens=64)]


def test_switched_off_tools_are_refused_for_this_run_only(demo_tool_manager: ToolManager) -> None:
    turns = [wire.think("try") + wire.code_action("print(1)"), wire.answer_action("1")]
    prepared = prepare_input(None, "Is code allowed?")
    run = ChatRun(ScriptedPolicy(turns), demo_tool_manager, prepared, RunSettings(enabled_tools=["search"]))
    trajectory = _finish(run)[-1].trajectory
    assert trajectory.turns[0].observation.status == "disabled" and trajectory.final_answer == "1"
    assert "code" not in demo_tool_manager.disabled_tools
    forced = ChatRun(ScriptedPolicy(turns), demo_tool_manager, prepared, RunSettings(force_no_tool=True))
    trajectory = _finish(forced)[-1].trajectory
    assert len(trajectory.turns) == 1 and trajectory.turns[0].observation is None and forced.request.force_no_tool


def test_stop_ends_the_run_and_frees_its_sandbox_session(demo_tool_manager: ToolManager, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []
    close = demo_tool_manager.close_session
    monkeypatch.setattr(demo_tool_manager, "close_session", lambda session: (closed.append(session.session_id), close(session)))
    turns = [wire.think(f"step {i}") + wire.code_action(f"v = {i}\nprint(v)") for i in range(30)]
    run = ChatRun(ScriptedPolicy(turns, latency_s=0.1), demo_tool_manager, prepare_input(None, "Loop"), RunSettings(max_turns=30))
    updates = run.updates()
    first = next(updates)
    assert not first.done and "The model is working" in first.html
    run.stop()
    final = list(updates)[-1]
    trajectory = final.trajectory
    assert final.done and trajectory.stop_reason == "error" and trajectory.metadata["error"] == STOPPED_BY_USER
    assert len(trajectory.turns) < 30
    assert len(closed) == 1  # the tool session (its kernel) was handed back to the manager
    assert "stopped by the user" in final.html


def test_the_saved_trajectory_renders_exactly_like_the_live_one(demo_tool_manager: ToolManager, tmp_path: Path) -> None:
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nprint('drawn')"
    turns = [wire.think("draw") + wire.code_action(plot), wire.answer_action("a line")]
    image = _png(tmp_path / "in.png", (64, 48))
    run = ChatRun(ScriptedPolicy(turns), demo_tool_manager, prepare_input([str(image)], "Draw"), RunSettings())
    final = _finish(run)[-1]
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [final.trajectory], append=False)
    (loaded,) = read_jsonl(path)
    assert render_trajectory(loaded) == final.html
    media = TrajectoryMedia.of(loaded)
    assert len(media.inputs) == 1 and len(media.observations[0]) == 1
    figure = Image.open(io.BytesIO(__import__("base64").b64decode(media.observations[0][0].split(",", 1)[1])))
    assert figure.size[0] > 100  # a matplotlib figure, not a placeholder


def test_sessions_stop_the_run_of_that_browser_session_only(demo_tool_manager: ToolManager) -> None:
    sessions = ChatSessions()
    runs = [ChatRun(ScriptedPolicy(["x"]), None, prepare_input(None, "q"), RunSettings()) for _ in range(2)]
    sessions.start("a", runs[0])
    sessions.start("b", runs[1])
    assert sessions.stop("a") and runs[0].stop_event.is_set() and not runs[1].stop_event.is_set()
    sessions.finish("a", runs[0])
    assert not sessions.stop("a") and len(sessions) == 1


def test_an_openai_compatible_server_gets_the_page_sampling_settings(demo_tool_manager: ToolManager) -> None:
    """``--api_base`` path: the run talks to a chat-completions server on loopback (a stand-in for vLLM)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    replies = [wire.think("compute") + "<code>\n```python\nprint(6 * 7)\n```\n", wire.answer_action("42")]
    payloads: list[dict] = []

    class ChatCompletions(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payloads.append(payload)
            text = replies[len(payloads) - 1]
            body = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        policy = OpenAIPolicy(f"http://127.0.0.1:{server.server_port}/v1", "deepeyes")
        settings = RunSettings(temperature=0.6, max_new_tokens=96)
        trajectory = _finish(ChatRun(policy, demo_tool_manager, prepare_input(None, "6 times 7?"), settings))[-1].trajectory
    finally:
        server.shutdown()
        server.server_close()
    assert [(p["temperature"], p["max_tokens"], p["model"]) for p in payloads] == [(0.6, 96, "deepeyes")] * 2
    assert trajectory.turns[0].action.kind == "code" and "42" in trajectory.turns[0].observation.text  # stop tag restored, code ran
    assert trajectory.final_answer == "42" and policy.config.temperature == 0.0


def test_a_failing_model_backend_ends_the_run_with_a_message() -> None:
    def unreachable(messages):
        raise ConnectionError("endpoint down")

    final = _finish(ChatRun(ScriptedPolicy(unreachable), None, prepare_input(None, "q"), RunSettings()))[-1]
    assert final.error == "The model backend failed: ConnectionError: endpoint down"
    assert final.trajectory.stop_reason == "error" and "endpoint down" in final.html
