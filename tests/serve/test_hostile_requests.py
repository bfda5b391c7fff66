"""Hostile requests are refused before any work, in OpenAI's error shape (issue 30, items 5, 11 and 12).

Each test runs the real service (uvicorn on loopback) and sends what an operator breaking it
on purpose sent: a 2 MB question, JSON nested 5,000 deep, image URLs naming the service's own
loopback ports, requests without the API key.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from serve_helpers import Served, serve
from test_errors import RED, ask, assert_openai_error, image_site  # noqa: F401 - image_site is a fixture

from deepeyes.config import ConfigError
from deepeyes.model_args import ModelArguments
from deepeyes.serve import ServeConfig
from deepeyes.serve.__main__ import main as serve_main
from deepeyes.serve.fetch import FetchRefused, FetchRules
from deepeyes.tool_manager import ToolManager
from deepeyes.utils.auth import bearer_token
from deepeyes.utils.processes import free_port

TWO_MB_QUESTION = "How many dots are there? " + "dot " * (2 * 1024 * 1024 // 4)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path, serve_tools: ToolManager) -> Iterator[Served]:
    """The service on the tiny Qwen2.5-VL (its real tokenizer measures prompts)."""
    with serve(ServeConfig(model=ModelArguments(model_path=str(tiny_model_dir), max_new_tokens=4)), serve_tools) as served:
        yield served


def post(served: Served, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{served.base_url}/chat/completions", content=body, timeout=120,
                      headers={"Content-Type": "application/json", **(headers or {})})


def test_a_two_megabyte_question_is_refused_before_generation(tiny: Served) -> None:
    body = json.dumps({"model": "deepeyes", "messages": ask(TWO_MB_QUESTION, RED)})
    start = time.perf_counter()
    response = post(tiny, body)
    elapsed = time.perf_counter() - start
    assert_openai_error(response, 400, "context_length_exceeded")
    error = response.json()["error"]
    assert error["param"] == "messages" and "16384" in error["message"]
    assert elapsed < 60  # tokenising 2 MB, never generating (the issue saw no answer in 120 s and 12 GB)
    assert all(batching.batches == 0 for batching in tiny.app.state.serve.backend.batching)  # the model was never asked
    # the same holds in the generate mode (a client-side agent loop), and a normal question still works
    generate = json.dumps({"model": "deepeyes", "messages": ask(TWO_MB_QUESTION), "mode": "generate"})
    assert_openai_error(post(tiny, generate), 400, "context_length_exceeded")
    client = openai.OpenAI(base_url=tiny.base_url, api_key="unused", max_retries=0, timeout=300)
    completion = client.chat.completions.create(model="deepeyes", messages=ask("plain", RED), max_tokens=4, extra_body={"max_turns": 1})
    assert completion.usage.turns == 1


def test_the_official_client_raises_its_bad_request_error(tiny: Served) -> None:
    client = openai.OpenAI(base_url=tiny.base_url, api_key="unused", max_retries=0, timeout=300)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask(TWO_MB_QUESTION))
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_json_nested_deeply_is_a_400(scripted: Served, depth: int) -> None:
    nested = '{"model": "deepeyes", "messages": ' + "[" * depth + "]" * depth + "}"
    assert_openai_error(post(scripted, nested), 400, "invalid_json")


BAD_REQUESTS = [
    ({"model": "deepeyes", "messages": [{"role": "system", "content": "hi"}]}, "missing_user_message"),
    ({"model": "deepeyes", "messages": [{"role": "user", "content": "   "}]}, "missing_question"),
    ({"model": "deepeyes", "messages": ask("plain"), "disable_tools": ["telepathy"]}, "unknown_tool"),
    ({"model": "deepeyes", "messages": ask("plain"), "max_turns": 1000}, "invalid_value"),
    ({"model": "deepeyes", "messages": ask("plain"), "stop": ["x"], "stream": True}, "unsupported_value"),
    ({"model": "deepeyes", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": [
        {"type": "image_url", "image_url": {"url": RED}}]}], "mode": "generate"}, "invalid_message"),
    ({"model": "deepeyes", "messages": []}, "invalid_request"),
    ({"model": "deepeyes", "messages": ask("plain"), "temperature": 9}, "invalid_request"),
]


@pytest.mark.parametrize(("body", "code"), BAD_REQUESTS)
def test_every_400_names_its_code(scripted: Served, body: dict, code: str) -> None:
    assert_openai_error(post(scripted, json.dumps(body)), 400, code)


def test_other_http_errors_name_their_code_too(scripted: Served) -> None:
    assert_openai_error(httpx.get(f"{scripted.base_url}/chat/completions"), 405, "method_not_allowed")
    assert_openai_error(httpx.get(f"{scripted.root}/nowhere"), 404, "not_found")


def closed_port() -> int:
    port = free_port()
    with socket.socket() as probe:  # nothing listens there
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    return port


def test_loopback_image_urls_are_refused_without_connecting(scripted: Served, image_site: str) -> None:  # noqa: F811
    for url in (f"{image_site}/red.png", f"http://127.0.0.1:{closed_port()}/x.png", "http://localhost:22/", "http://[::1]/a.png",
                "http://10.0.0.1/a.png", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0:80/"):
        response = post(scripted, json.dumps({"model": "deepeyes", "messages": ask("plain", url)}))
        assert_openai_error(response, 400, "invalid_image_url")
        assert "not fetched by this service" in response.json()["error"]["message"], url


def test_fetch_errors_do_not_tell_open_ports_from_closed_ones(serve_tools: ToolManager, script_file: Path, image_site: str) -> None:  # noqa: F811
    """Allowed to reach loopback, the service still answers an open port (HTTP 404) and a closed one alike."""
    with serve(ServeConfig(script_path=str(script_file), allow_private_image_urls=True), serve_tools) as trusting:
        messages = []
        for url in (f"{image_site}/missing.png", f"http://127.0.0.1:{closed_port()}/missing.png"):
            response = post(trusting, json.dumps({"model": "deepeyes", "messages": ask("plain", url)}))
            assert_openai_error(response, 400, "invalid_image_url")
            messages.append(response.json()["error"]["message"].replace(url, "<url>"))
        assert messages[0] == messages[1] == "image <url> could not be fetched"


def test_image_hosts_allowlist_and_address_rules() -> None:
    rules = FetchRules.from_list(False, "images.example.org, cdn.example.org")
    rules.check_host("CDN.example.org")
    with pytest.raises(FetchRefused):
        rules.check_host("evil.example.org")
    import ipaddress

    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.0.1", "169.254.169.254", "::1", "fe80::1", "::ffff:127.0.0.1", "0.0.0.0"):
        with pytest.raises(FetchRefused):
            rules.check_address(ipaddress.ip_address(address))
    rules.check_address(ipaddress.ip_address("93.184.216.34"))
    FetchRules(allow_private=True).check_address(ipaddress.ip_address("127.0.0.1"))


def test_the_api_key_is_required_when_set(serve_tools: ToolManager, script_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPEYES_API_KEY", "s3cret-key")
    with serve(ServeConfig(script_path=str(script_file)), serve_tools) as guarded:
        body = json.dumps({"model": "deepeyes", "messages": ask("plain", RED)})
        assert_openai_error(post(guarded, body), 401, "invalid_api_key")
        assert_openai_error(post(guarded, body, {"Authorization": "Bearer wrong"}), 401, "invalid_api_key")
        assert httpx.get(f"{guarded.root}/health").status_code == 200  # liveness probes need no key
        assert httpx.get(f"{guarded.base_url}/models").status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=guarded.base_url, api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=guarded.base_url, api_key="s3cret-key", max_retries=0, timeout=120)
        assert client.chat.completions.create(model="deepeyes", messages=ask("plain", RED)).choices[0].message.content == "42"


def test_a_non_loopback_bind_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPEYES_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="DEEPEYES_API_KEY"):
        serve_main(["--host", "0.0.0.0", "--port", str(free_port())])
    with pytest.raises(ConfigError):
        bearer_token("DEEPEYES_API_KEY", "192.168.1.5", allow_unauthenticated=False)
    assert bearer_token("DEEPEYES_API_KEY", "192.168.1.5", allow_unauthenticated=True) is None
    assert bearer_token("DEEPEYES_API_KEY", "127.0.0.1", allow_unauthenticated=False) is None
    monkeypatch.setenv("DEEPEYES_API_KEY", "k")
    assert bearer_token("DEEPEYES_API_KEY", "0.0.0.0", allow_unauthenticated=False) == "k"
