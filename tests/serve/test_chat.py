"""/v1/chat/completions through the official OpenAI client: answers, tools, streaming, switches, metrics."""

from __future__ import annotations

import logging
import time

import httpx
import openai
import pytest
from PIL import Image
from serve_helpers import Served, sandbox_sessions, wait_for

from deepeyes.images import to_data_url
from deepeyes.policies.base import SamplingParams
from deepeyes.trajectory import TOOL_KINDS, validate

RED = to_data_url(Image.new("RGB", (64, 48), "red"))


def ask(question: str, image_url: str = RED) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": question}]}]


@pytest.fixture()
def client(scripted: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted.base_url, api_key="unused", max_retries=0, timeout=120)


def test_plain_answer_with_trajectory_and_zero_tool_counts(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="deepeyes", messages=ask("plain"))
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "42"
    assert choice.finish_reason == "stop"
    usage = completion.usage.model_dump()
    assert {tool: usage["tool_calls"][tool] for tool in TOOL_KINDS} == dict.fromkeys(TOOL_KINDS, 0)
    assert usage["turns"] == 1 and completion.usage.total_tokens > 0
    trajectory = completion.model_extra["trajectory"]
    validate(trajectory)
    assert trajectory["question"] == "plain" and trajectory["final_answer"] == "42"


def test_code_call_returns_its_figure_and_closes_the_session(client: openai.OpenAI, scripted: Served) -> None:
    tools = scripted.app.state.serve.tools
    raw = client.chat.completions.with_raw_response.create(model="deepeyes", messages=ask("figure"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "a red square"
    assert completion.usage.model_dump()["tool_calls"]["code"] == 1
    trajectory = completion.model_extra["trajectory"]
    validate(trajectory)
    observation = trajectory["turns"][0]["observation"]
    assert observation["status"] == "success" and observation["image_count"] == 1
    assert "(64, 48)" in observation["text"]  # the request's image was image_1 in the kernel
    assert float(raw.headers["x-deepeyes-overhead-ms"]) >= 0.0 and float(raw.headers["x-deepeyes-overhead-cpu-ms"]) > 0.0
    assert wait_for(lambda: sandbox_sessions(tools) == 0), "the request's sandbox session was not closed"


def test_streaming_sends_each_turn_then_the_answer_usage_and_trajectory(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="deepeyes", messages=ask("figure"), stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    turns = [c.choices[0].delta.model_extra["deepeyes_turn"] for c in chunks if c.choices and (c.choices[0].delta.model_extra or {}).get("deepeyes_turn")]
    assert [t["action"]["kind"] for t in turns] == ["code", "answer"]
    assert turns[0]["observation"]["image_count"] == 1 and turns[0]["observation"]["summary"].startswith("Code execution result")
    thinking = [c.choices[0].delta.model_extra.get("reasoning_content") for c in chunks if c.choices and c.choices[0].delta.model_extra]
    assert "Let me look closer." in thinking
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a red square"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    validate(finish[0].model_extra["trajectory"])
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump()["tool_calls"]["code"] == 1


def test_text_search_runs_server_side(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="deepeyes", messages=ask("search"))
    assert completion.usage.model_dump()["tool_calls"]["search"] == 1
    observation = completion.model_extra["trajectory"]["turns"][0]["observation"]
    assert observation["status"] == "success" and observation["text"].startswith("<tool_response>")


def test_request_switches_disable_a_tool_force_no_tool_and_cap_turns(client: openai.OpenAI) -> None:
    disabled = client.chat.completions.create(model="deepeyes", messages=ask("figure"), extra_body={"disable_tools": ["code"]})
    trajectory = disabled.model_extra["trajectory"]
    assert trajectory["turns"][0]["observation"]["status"] == "disabled"
    assert disabled.usage.model_dump()["tool_calls"]["code"] == 0

    no_tool = client.chat.completions.create(model="deepeyes", messages=ask("figure"), extra_body={"force_no_tool": True})
    trajectory = no_tool.model_extra["trajectory"]
    assert len(trajectory["turns"]) == 1 and trajectory["turns"][0]["observation"] is None
    assert no_tool.usage.model_dump()["tool_calls"]["code"] == 0

    capped = client.chat.completions.create(model="deepeyes", messages=ask("figure"), extra_body={"max_turns": 1})
    assert capped.choices[0].finish_reason == "length" and capped.choices[0].message.content is None
    assert capped.model_extra["trajectory"]["stop_reason"] == "max_turns"


def test_a_requests_sampling_reaches_the_shared_policy_capped_at_the_services_limit(client: openai.OpenAI, scripted: Served) -> None:
    policy = scripted.app.state.serve.backend.policy  # the scripted policy records what each call asked for
    limit = scripted.config.model.max_new_tokens
    client.chat.completions.create(model="deepeyes", messages=ask("plain"), temperature=0.5, top_p=0.7, max_tokens=10)
    assert policy.samplings[-1] == SamplingParams(temperature=0.5, top_p=0.7, max_new_tokens=10)
    client.chat.completions.create(model="deepeyes", messages=ask("plain"), max_tokens=limit + 100)
    assert policy.samplings[-1] == SamplingParams(max_new_tokens=limit)  # the service's defaults, its cap


def test_models_health_and_metrics(client: openai.OpenAI, scripted: Served) -> None:
    assert [model.id for model in client.models.list()] == ["deepeyes"]
    client.chat.completions.create(model="deepeyes", messages=ask("figure"))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=ask("plain"))
    health = httpx.get(f"{scripted.root}/health").json()
    assert health["status"] == "ok" and health["tools"] == ["code", "search"]
    text = httpx.get(f"{scripted.root}/metrics").text
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert metrics['deepeyes_serve_tool_calls_total{tool="code"}'] >= 1
    assert 'deepeyes_serve_tool_calls_total{tool="image_search"}' in metrics
    assert metrics['deepeyes_serve_errors_total{code="model_not_found",status="404"}'] >= 1
    assert metrics['deepeyes_serve_requests_total{route="/v1/chat/completions",status="200"}'] >= 1
    assert metrics["deepeyes_serve_turns_total"] >= 2
    assert metrics['deepeyes_serve_request_latency_seconds_count{mode="agent"}'] >= 1
    assert metrics["deepeyes_serve_overhead_seconds_count"] >= 1


def test_one_log_line_per_request(client: openai.OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="deepeyes.serve")
    client.chat.completions.create(model="deepeyes", messages=ask("figure"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="deepeyes", messages=ask("plain", "ftp://example.invalid/x.png"))

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "deepeyes.serve" and "/v1/chat/completions" in r.getMessage()]

    # The server logs a request once its response is sent, which can be after the client has it.
    deadline = time.monotonic() + 10
    while len(logged()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = logged()
    assert len(lines) == 2
    assert lines[0].startswith("POST /v1/chat/completions 200 ") and "mode=agent turns=2" in lines[0] and "tools=code:1" in lines[0]
    assert lines[1].startswith("POST /v1/chat/completions 400 ") and "error=invalid_image_url" in lines[1]
