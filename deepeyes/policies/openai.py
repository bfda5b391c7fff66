"""An OpenAI-compatible chat endpoint (e.g. vLLM serving a DeepEyesV2 checkpoint)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import requests

from deepeyes import wire
from deepeyes.chat import Message
from deepeyes.images import to_data_url
from deepeyes.policies.base import Generation


class PolicyServerError(RuntimeError):
    """The chat endpoint failed or answered with something that is not a chat completion."""


@dataclass
class OpenAIPolicyConfig:
    api_base: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never from a file
    max_tokens: int = 2048
    temperature: float = 0.0
    timeout_s: float = 300.0


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our messages → OpenAI chat messages; images travel as PNG data URLs in place."""
    converted = []
    for message in messages:
        if not message.images:
            converted.append({"role": message.role, "content": message.content})
            continue
        parts = [
            {"type": "text", "text": piece}
            if isinstance(piece, str)
            else {"type": "image_url", "image_url": {"url": to_data_url(piece)}}
            for piece in message.segments()
        ]
        converted.append({"role": message.role, "content": parts})
    return converted


class OpenAIPolicy:
    def __init__(self, api_base: str, model: str, **options: Any):
        self.config = OpenAIPolicyConfig(api_base=api_base.rstrip("/"), model=model, **options)
        self._local = threading.local()  # one keep-alive session per thread

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            session = requests.Session()
            key = os.environ.get(self.config.api_key_env)
            if key:
                session.headers["Authorization"] = f"Bearer {key}"
            self._local.session = session
        return self._local.session

    def generate(self, messages: list[Message]) -> Generation:
        payload = {
            "model": self.config.model,
            "messages": to_openai_messages(messages),
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "stop": list(wire.TOOL_STOPS),
            "include_stop_str_in_output": True,  # vLLM extension; other servers ignore it
        }
        url = f"{self.config.api_base}/chat/completions"
        try:
            response = self._session().post(url, json=payload, timeout=self.config.timeout_s)
        except requests.RequestException as exc:
            raise PolicyServerError(f"chat endpoint {url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise PolicyServerError(f"chat endpoint {url} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PolicyServerError(f"chat endpoint {url} returned no chat completion: {response.text[:300]}") from exc
        usage = body.get("usage") or {}
        return Generation(
            text=wire.restore_stop_string(text, choice.get("finish_reason")),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
