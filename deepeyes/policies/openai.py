"""An OpenAI-compatible chat endpoint (e.g. vLLM serving a DeepEyesV2 checkpoint).

Requests go through the official ``openai`` client, so connection reuse, timeouts and the
error classes are the ones every OpenAI-compatible server is tested against; this module
only converts our messages and turns the client's errors into :class:`PolicyServerError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from deepeyes import wire
from deepeyes.chat import Message
from deepeyes.images import to_data_url
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.video import Mp4UrlCache, mp4_data_url
from deepeyes.videos import VideoClip

#: The client insists on a key; a server without authentication gets this one and no header.
_NO_KEY = "no-key"


class PolicyServerError(RuntimeError):
    """The chat endpoint failed or answered with something that is not a chat completion."""


@dataclass
class OpenAIPolicyConfig:
    api_base: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never from a file
    #: The default sampling settings (a call's own :class:`SamplingParams` replaces all three);
    #: ``max_new_tokens`` is sent as OpenAI's ``max_tokens``.
    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    timeout_s: float = 300.0


def to_openai_messages(messages: list[Message], video_url: Callable[[VideoClip], str] = mp4_data_url) -> list[dict[str, Any]]:
    """Our messages → OpenAI chat messages; images and videos travel as data URLs in place.

    An image is a PNG ``image_url`` part; a video is a ``video_url`` part holding the clip's
    own frames as an MP4 at its sampled rate (``data:video/mp4;base64,…``, the form vLLM's
    server decodes), so the server sees the frames the tools and the record name, not a
    re-sampling of the source file, and a long file is not uploaded whole at every turn.
    ``video_url`` makes that URL (the policy passes its :class:`Mp4UrlCache`).
    """
    converted = []
    for message in messages:
        if not message.images and not message.videos:
            converted.append({"role": message.role, "content": message.content})
            continue
        converted.append({"role": message.role, "content": [_openai_part(piece, video_url) for piece in message.segments()]})
    return converted


def _openai_part(piece: Any, video_url: Callable[[VideoClip], str]) -> dict[str, Any]:
    if isinstance(piece, str):
        return {"type": "text", "text": piece}
    if isinstance(piece, VideoClip):
        return {"type": "video_url", "video_url": {"url": video_url(piece)}}
    return {"type": "image_url", "image_url": {"url": to_data_url(piece)}}


class OpenAIPolicy:
    """One ``openai.OpenAI`` client per policy (thread-safe: the agent loop calls it from many threads)."""

    def __init__(self, api_base: str, model: str, **options: Any):
        self.config = OpenAIPolicyConfig(api_base=api_base.rstrip("/"), model=model, **options)
        #: The settings a call without its own gets.
        self.sampling = SamplingParams(self.config.temperature, self.config.top_p, self.config.max_new_tokens)
        #: Each conversation's videos, encoded at their first turn and reused by the next ones.
        self._video_urls = Mp4UrlCache()
        key = os.environ.get(self.config.api_key_env)
        # Without a key no Authorization header is sent at all, as servers without authentication expect.
        self._headers: dict[str, Any] = {} if key else {"Authorization": openai.Omit()}
        # No retries: a failed turn is reported to the caller, which decides (evaluation retries the sample).
        self._client = openai.OpenAI(
            base_url=self.config.api_base, api_key=key or _NO_KEY, timeout=self.config.timeout_s, max_retries=0
        )

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        """One turn from the endpoint, sampled with ``sampling`` (default: :attr:`sampling`).

        Raises:
            PolicyServerError: the endpoint is unreachable, answers an HTTP error, or not a chat completion.
        """
        sampling = sampling or self.sampling
        url = f"{self.config.api_base}/chat/completions"
        try:
            # The raw response, so that a body which is not a completion can be quoted in the error.
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.config.model,
                messages=to_openai_messages(messages, self._video_urls),  # type: ignore[arg-type]  # dicts of the documented shape
                max_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                stop=list(wire.TOOL_STOPS),
                extra_body={"include_stop_str_in_output": True},  # vLLM extension; other servers ignore it
                extra_headers=self._headers,
            )
        except openai.APIStatusError as exc:
            raise PolicyServerError(f"chat endpoint {url} answered HTTP {exc.status_code}: {exc.response.text[:300]}") from exc
        except openai.APIConnectionError as exc:  # also timeouts
            raise PolicyServerError(f"chat endpoint {url} unreachable: {exc}") from exc
        try:
            completion = raw.parse()
        except (ValueError, openai.APIResponseValidationError):
            completion = None
        if not isinstance(completion, ChatCompletion) or not completion.choices or completion.choices[0].message is None:
            raise PolicyServerError(f"chat endpoint {url} returned no chat completion: {raw.text[:300]}")
        choice = completion.choices[0]
        usage = completion.usage
        return Generation(
            text=wire.restore_stop_string(choice.message.content or "", choice.finish_reason),
            prompt_tokens=int(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=int(usage.completion_tokens or 0) if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
        )
