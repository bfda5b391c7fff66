"""Policies: the OpenAI-compatible client against a real local stand-in server, the HF policy on the tiny model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from PIL import Image
from werkzeug.serving import make_server

from deepeyes.chat import Message
from deepeyes.images import ImageLoadError, load_image
from deepeyes.policies.base import SamplingParams
from deepeyes.policies.hf import HFPolicy
from deepeyes.policies.openai import OpenAIPolicy, PolicyServerError
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.utils.processes import free_port


class ChatStandIn:
    """A loopback chat-completions server that records requests and replays scripted replies."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, dict]] = []
        app = Flask("chat-stand-in")

        @app.post("/v1/chat/completions")
        def complete():
            self.requests.append({"json": request.get_json(), "auth": request.headers.get("Authorization")})
            status, body = self.replies.pop(0)
            return jsonify(body), status

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture()
def chat_server() -> Iterator[ChatStandIn]:
    stand_in = ChatStandIn()
    stand_in.thread.start()
    yield stand_in
    stand_in.server.shutdown()


def completion(text: str, finish_reason: str = "stop") -> dict:
    return {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


def test_openai_policy_sends_images_in_place_and_restores_stop_string(chat_server: ChatStandIn, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_KEY", "secret-from-env")
    chat_server.replies.append((200, completion("<think>zoom</think>\n<code>\n```python\nprint(1)\n```\n")))
    policy = OpenAIPolicy(chat_server.api_base, "deepeyes-7b", api_key_env="STANDIN_KEY")
    red = Image.new("RGB", (8, 8), "red")
    generation = policy.generate([Message("system", "sys"), Message("user", "look <image> here", [red])])
    assert generation.text.endswith("</code>")
    assert (generation.prompt_tokens, generation.completion_tokens) == (11, 7)
    sent = chat_server.requests[0]
    assert sent["auth"] == "Bearer secret-from-env"
    parts = sent["json"]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert load_image(parts[1]["image_url"]["url"]).getpixel((0, 0)) == (255, 0, 0)
    assert "</tool_call>" in sent["json"]["stop"]


def test_openai_policy_keeps_text_when_truncated_and_reports_server_errors(chat_server: ChatStandIn) -> None:
    policy = OpenAIPolicy(chat_server.api_base, "m")
    chat_server.replies.append((200, completion("<code>\nprint(", finish_reason="length")))
    assert policy.generate([Message("user", "q")]).text == "<code>\nprint("
    chat_server.replies.append((503, {"error": "overloaded"}))
    with pytest.raises(PolicyServerError, match="HTTP 503"):
        policy.generate([Message("user", "q")])
    chat_server.replies.append((200, {"unexpected": True}))
    with pytest.raises(PolicyServerError, match="no chat completion"):
        policy.generate([Message("user", "q")])


def test_openai_policy_sends_no_key_it_was_not_given_and_quotes_a_body_that_is_no_completion(chat_server: ChatStandIn, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    policy = OpenAIPolicy(chat_server.api_base, "m", max_new_tokens=5, temperature=0.3)
    chat_server.replies.append((200, completion("<answer>4</answer>")))
    assert policy.generate([Message("user", "q")]).text == "<answer>4</answer>"
    sent = chat_server.requests[0]
    assert sent["auth"] is None  # servers without authentication get no Authorization header
    assert (sent["json"]["max_tokens"], sent["json"]["temperature"], sent["json"]["include_stop_str_in_output"]) == (5, 0.3, True)
    chat_server.replies.append((200, ["not", "a", "completion"]))
    with pytest.raises(PolicyServerError, match=r"no chat completion: \["):
        policy.generate([Message("user", "q")])


def test_openai_policy_sends_each_calls_own_sampling(chat_server: ChatStandIn) -> None:
    """A call's SamplingParams replace the policy's defaults for that call only."""
    policy = OpenAIPolicy(chat_server.api_base, "m", max_new_tokens=5, temperature=0.0)
    chat_server.replies.extend([(200, completion("<answer>1</answer>")), (200, completion("<answer>2</answer>"))])
    policy.generate([Message("user", "q")], SamplingParams(temperature=0.9, top_p=0.5, max_new_tokens=7))
    policy.generate([Message("user", "q")])
    sent = [(r["json"]["temperature"], r["json"]["top_p"], r["json"]["max_tokens"]) for r in chat_server.requests]
    assert sent == [(0.9, 0.5, 7), (0.0, 1.0, 5)]


def test_openai_policy_unreachable_server() -> None:
    policy = OpenAIPolicy(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_s=2)
    with pytest.raises(PolicyServerError, match="unreachable"):
        policy.generate([Message("user", "q")])


def test_message_placeholders_must_match_images() -> None:
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        Message("user", "<image> what?", [])


def test_scripted_policy_follows_conversation_position() -> None:
    policy = ScriptedPolicy({"q1": ["a", "b"], "q2": ["c"]})
    first = [Message("user", "<image>\nq1", [Image.new("RGB", (2, 2))])]
    assert policy.generate(first).text == "a"
    assert policy.generate([*first, Message("assistant", "a"), Message("user", "obs")]).text == "b"
    assert policy.generate([Message("user", "q2")]).text == "c"
    with pytest.raises(KeyError):
        policy.generate([Message("user", "q3")])


@pytest.fixture(scope="module")
def hf_policy(tiny_model_dir: Path) -> HFPolicy:
    return HFPolicy(tiny_model_dir, max_new_tokens=6)


def test_hf_policy_upscales_tiny_images_and_batches_like_single_calls(hf_policy: HFPolicy) -> None:
    tiny = [Message("user", "<image>\nWhat is this?", [Image.new("RGB", (3, 2), "blue")])]
    inputs = hf_policy.encode(tiny)
    grid = inputs["image_grid_thw"][0].tolist()
    assert grid[1] * 14 * grid[2] * 14 >= hf_policy.min_pixels  # upscaled to at least min_pixels
    single = hf_policy.generate(tiny)
    batch = hf_policy.generate_batch([tiny, [Message("user", "no image here")]])
    assert batch[0].text == single.text  # greedy, left padding does not change the result
    assert 0 < single.completion_tokens <= 6 and "<|im_end|>" not in single.text


def test_undecodable_image_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_image(broken)
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "absent.png")


def test_literal_image_tag_in_model_text_or_tool_output_is_plain_text() -> None:
    from deepeyes import wire

    assistant = Message("assistant", "<think>the <image> shows</think><answer>x</answer>")
    assert assistant.segments() == [assistant.content]
    observation = wire.code_observation("printed <image> literally", "", 0)
    assert observation.count("<image>") == 0
    Message("user", observation, [])  # placeholder count matches: no error
