"""Sessions end with their client; the service works as an upstream for our OpenAI policy; a real model batches."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from serve_helpers import FIGURE_CODE, SCRIPT, Served, sandbox_sessions, serve, wait_for

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest, RunCancelled
from deepeyes.images import to_data_url
from deepeyes.model_args import ModelArguments
from deepeyes.policies.openai import OpenAIPolicy
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.serve import ServeConfig
from deepeyes.serve.session import RequestRun
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import Action, validate
from deepeyes.utils.processes import free_port

RED = to_data_url(Image.new("RGB", (64, 48), "red"))


def ask(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": RED}}, {"type": "text", "text": question}]}]


SLOW = {"model": "deepeyes", "messages": ask("slow")}


def metric(served: Served, name: str) -> float:
    for line in httpx.get(f"{served.root}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise KeyError(name)


def _open_request(served: Served, body: dict) -> socket.socket:
    """Send a request on a raw connection and leave it waiting, so the test decides when the client goes away."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", served.config.port))
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    sock.sendall(head.encode() + payload)
    return sock


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "plain"])
def test_client_disconnect_closes_the_session_and_stops_the_loop(scripted: Served, serve_tools: ToolManager, stream: bool) -> None:
    """The sandbox finishes the call in flight (it closes a session between calls); no further turn runs."""
    assert wait_for(lambda: sandbox_sessions(serve_tools) == 0), "sessions of earlier tests still open"
    cancelled_before = metric(scripted, "deepeyes_serve_cancelled_total")
    turns_before = metric(scripted, "deepeyes_serve_turns_total")
    sock = _open_request(scripted, {**SLOW, "stream": stream})
    try:
        # the first scripted turn runs `time.sleep(4)` in the request's kernel; a second code call would follow
        assert wait_for(lambda: sandbox_sessions(serve_tools) == 1), "the code call never started"
        if stream:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()  # the client goes away mid-request
    assert wait_for(lambda: metric(scripted, "deepeyes_serve_cancelled_total") == cancelled_before + 1)
    assert wait_for(lambda: sandbox_sessions(serve_tools) == 0, timeout_s=30), "the session outlived its client"
    time.sleep(6)  # longer than the second call would take to open a kernel again
    assert sandbox_sessions(serve_tools) == 0, "the loop went on after the client left"
    assert metric(scripted, "deepeyes_serve_turns_total") == turns_before  # a cancelled trajectory is not counted
    assert metric(scripted, "deepeyes_serve_in_flight") == 0


class _HeldCalls:
    """The shared tool manager with each call's request held back until ``go`` is set (a slow network path)."""

    def __init__(self, manager: ToolManager) -> None:
        self.manager = manager
        self.sent = threading.Event()
        self.go = threading.Event()
        self.go.set()

    def __getattr__(self, name: str):
        return getattr(self.manager, name)

    def execute(self, session, action: Action, budget=None):
        self.sent.set()
        assert self.go.wait(30)
        return self.manager.execute(session, action, budget)


def test_a_disconnect_cannot_overtake_the_call_in_flight(serve_tools: ToolManager) -> None:
    """The loop closes the session itself, after the call in flight: a close sent first would free the
    session and the late call open it again."""
    assert wait_for(lambda: sandbox_sessions(serve_tools) == 0), "sessions of earlier tests still open"
    held = _HeldCalls(serve_tools)
    turns = [wire.think("set") + wire.code_action("x = 1"), wire.think("use") + wire.code_action("print(x + 1)"),
             wire.think("again") + wire.code_action("print(x)")]
    loop = AgentLoop(held, AgentConfig(max_turns=3))  # type: ignore[arg-type]  # duck-typed manager
    run = RequestRun(loop, ScriptedPolicy(turns), AgentRequest("q", [Image.new("RGB", (8, 8), "red")]))
    seen: list = []

    def on_turn(_trajectory, turn, _images) -> None:
        seen.append(turn)
        if len(seen) == 1:  # the second call's request will be held on its way
            held.go.clear()
            held.sent.clear()

    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(_result(run.run, on_turn)))
    worker.start()
    assert wait_for(lambda: len(seen) == 1 and held.sent.is_set())  # the second call is in flight
    run.abort()  # the client leaves while the second call is on its way
    time.sleep(0.5)  # time enough for an unordered close to reach the sandbox first
    held.go.set()
    worker.join(30)
    assert isinstance(outcome[0], RunCancelled)
    second = outcome[0].trajectory.turns[1].observation
    assert second.status == "success" and "2" in second.text  # the call in flight finished in its session
    assert len(outcome[0].trajectory.turns) == 2  # and no third turn ran
    assert wait_for(lambda: sandbox_sessions(serve_tools) == 0, timeout_s=10), "the late call left a session open"


def _result(work, on_turn):
    try:
        return work(on_turn)
    except RunCancelled as cancelled:
        return cancelled


def test_a_cancelled_request_is_in_flight_until_its_tool_call_returns(serve_tools: ToolManager, script_file: Path) -> None:
    """``in_flight`` follows the work: after a disconnect, the call in flight still holds a worker and a session."""
    held = _HeldCalls(serve_tools)
    with serve(ServeConfig(script_path=str(script_file)), held) as served:  # type: ignore[arg-type]  # duck-typed manager
        held.go.clear()
        sock = _open_request(served, {"model": "deepeyes", "messages": ask("figure")})
        try:
            assert held.sent.wait(30), "the code call never started"
        finally:
            sock.close()
        assert wait_for(lambda: metric(served, "deepeyes_serve_cancelled_total") == 1)
        assert metric(served, "deepeyes_serve_in_flight") == 1
        held.go.set()
        assert wait_for(lambda: metric(served, "deepeyes_serve_in_flight") == 0)
        assert wait_for(lambda: sandbox_sessions(serve_tools) == 0), "the session outlived the call"
        assert metric(served, "deepeyes_serve_turns_total") == 0


def test_openai_policy_drives_a_client_side_loop_through_the_service(scripted: Served, serve_tools: ToolManager) -> None:
    """deepeyes.policies.openai (the demo's --api_base backend) gets one turn per call, stop strings honoured."""
    policy = OpenAIPolicy(scripted.base_url, "deepeyes")
    trajectory = AgentLoop(serve_tools, AgentConfig(max_turns=4)).run(policy, [Image.new("RGB", (50, 40), "green")], "figure")
    validate(trajectory.to_dict())
    assert [turn.action.kind for turn in trajectory.turns] == ["code", "answer"]
    assert trajectory.turns[0].action.content.strip() == FIGURE_CODE  # the closing </code> came back intact
    assert trajectory.turns[0].observation.image_count == 1 and "(50, 40)" in trajectory.turns[0].observation.text
    assert trajectory.final_answer == "a red square"


def test_a_service_can_use_another_service_as_its_upstream(scripted: Served, serve_tools: ToolManager) -> None:
    with serve(ServeConfig(model=ModelArguments(api_base=scripted.base_url, served_model="deepeyes"), served_model_name="front"), serve_tools) as front:
        client = openai.OpenAI(base_url=front.base_url, api_key="unused", max_retries=0, timeout=120)
        completion = client.chat.completions.create(model="front", messages=ask("figure"))
    assert completion.choices[0].message.content == "a red square"
    assert completion.usage.model_dump()["tool_calls"]["code"] == 1


def test_concurrent_requests_share_the_tiny_model_in_batches(tiny_model_dir: Path, serve_tools: ToolManager) -> None:
    config = ServeConfig(model=ModelArguments(model_path=str(tiny_model_dir), max_new_tokens=8), gather_ms=300.0)
    with serve(config, serve_tools) as served:
        client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0, timeout=300)
        results: list = []

        def one(index: int) -> None:
            results.append(client.chat.completions.create(
                model="deepeyes", messages=ask(f"q{index}"),
                max_tokens=4, extra_body={"max_turns": 2},
            ))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        backend = served.app.state.serve.backend
    assert len(results) == 4
    turns = sum(r.usage.model_dump()["turns"] for r in results)
    for completion in results:
        validate(completion.model_extra["trajectory"])
        assert all(turn["completion_tokens"] <= 4 for turn in completion.model_extra["trajectory"]["turns"])
    assert len(backend.batching) == 1  # one model, one batching policy
    assert backend.batching[0].batches < turns, "no two requests' turns were generated together"


def test_script_generates_runs_the_model_and_replays_the_text(tiny_model_dir: Path, serve_tools: ToolManager, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"plain": SCRIPT["plain"]}), encoding="utf-8")
    config = ServeConfig(model=ModelArguments(model_path=str(tiny_model_dir), max_new_tokens=4), script_path=str(script), script_generates=True)
    with serve(config, serve_tools) as served:
        client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0, timeout=300)
        completion = client.chat.completions.create(model="deepeyes", messages=ask("plain"))
        batches = served.app.state.serve.backend.batching[0].batches
    assert completion.choices[0].message.content == "42"
    assert 0 < completion.usage.completion_tokens <= 4 and batches == 1
    assert wire.ANSWER_OPEN in completion.model_extra["trajectory"]["turns"][0]["model_text"]


def test_a_failing_upstream_is_a_502(serve_tools: ToolManager) -> None:
    with serve(ServeConfig(model=ModelArguments(api_base=f"http://127.0.0.1:{free_port()}/v1")), serve_tools) as front:  # nothing listens there
        client = openai.OpenAI(base_url=front.base_url, api_key="unused", max_retries=0, timeout=120)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="deepeyes", messages=ask("plain"))
    assert caught.value.status_code == 502 and caught.value.code == "upstream_error"
