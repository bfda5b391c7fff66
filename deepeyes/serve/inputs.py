"""OpenAI chat messages → what the agent loop and the policies take.

Images arrive as ``image_url`` parts: a ``data:`` URI, an http(s) URL (downloaded here,
from public addresses only unless the operator allows more: :mod:`deepeyes.serve.fetch`),
or — only when the service allows local files — a path or ``file://`` URL. Every image
is decoded before any model work starts, so an undecodable one fails the request with
HTTP 400 naming the offending part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import httpx
from PIL import Image

from deepeyes.chat import Message
from deepeyes.images import QWEN_MAX_ASPECT, ImageLoadError, load_image
from deepeyes.serve.config import ServeConfig
from deepeyes.serve.errors import APIError, bad_request
from deepeyes.serve.fetch import FetchRefused
from deepeyes.serve.schemas import ChatCompletionRequest, ImagePart, TextPart
from deepeyes.wire import IMAGE_PLACEHOLDER, escape_placeholders

logger = logging.getLogger(__name__)


@dataclass
class ImageRef:
    """One ``image_url`` part, where it sits in the request, and its source (bytes once fetched)."""

    param: str  # e.g. "messages[1].content[0].image_url"
    url: str
    data: bytes | str | None = None  # bytes (downloaded), a data URI, or a local path


def image_refs(request: ChatCompletionRequest, config: ServeConfig) -> list[ImageRef]:
    """Every image part in order; raises 400 ``too_many_images`` or ``invalid_image_url``."""
    refs = [
        ImageRef(f"messages[{m}].content[{p}].image_url", part.image_url.url)
        for m, message in enumerate(request.messages)
        if isinstance(message.content, list)
        for p, part in enumerate(message.content)
        if isinstance(part, ImagePart)
    ]
    if len(refs) > config.max_images:
        raise bad_request(f"{len(refs)} images in the request; this service accepts at most {config.max_images}", "messages", "too_many_images")
    for ref in refs:
        scheme = urlparse(ref.url).scheme.lower()
        if ref.url.startswith("data:"):
            if not ref.url.startswith("data:image") or "," not in ref.url:
                raise bad_request("a data URI image must look like data:image/<type>;base64,<data>", ref.param, "invalid_image_url")
            ref.data = ref.url
        elif scheme in ("http", "https"):
            continue  # fetched by fetch_remote
        elif scheme in ("file", ""):
            if not config.allow_local_images:
                raise bad_request("local image paths are not accepted by this service (start it with --allow_local_images)", ref.param, "invalid_image_url")
            ref.data = unquote(urlparse(ref.url).path) if scheme == "file" else ref.url
        else:
            raise bad_request(f"unsupported image URL scheme {scheme!r}: use a data URI or an http(s) URL", ref.param, "invalid_image_url")
    return refs


async def fetch_remote(refs: list[ImageRef], client: httpx.AsyncClient, config: ServeConfig) -> None:
    """Download the http(s) images, each at most the request size limit.

    ``client`` is :func:`deepeyes.serve.fetch.image_client`: a host or address the service does
    not fetch from is a 400 saying so, before any connection. Any other failure (refused or
    timed-out connection, TLS, an HTTP error status) is one and the same 400, so that the
    answer does not tell an open port from a closed one; the reason is logged here.
    """
    for ref in refs:
        if ref.data is not None:
            continue
        try:
            async with client.stream("GET", ref.url, timeout=config.image_fetch_timeout_s, follow_redirects=True) as response:
                if response.status_code != 200:
                    raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > config.max_request_bytes:
                        raise APIError(413, f"image {ref.url} exceeds {config.max_request_bytes} bytes", param=ref.param, code="request_too_large")
                ref.data = bytes(body)
        except FetchRefused as exc:
            logger.info("image_url refused: %s (%s)", ref.url, exc)
            raise bad_request(
                f"image {ref.url} is not fetched by this service: only public hosts"
                + (" among its allowed image hosts" if config.image_url_hosts else "")
                + " (loopback and private addresses need --allow_private_image_urls)",
                ref.param,
                "invalid_image_url",
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.info("image_url fetch failed: %s (%s: %s)", ref.url, type(exc).__name__, exc)
            raise bad_request(f"image {ref.url} could not be fetched", ref.param, "invalid_image_url") from exc


def encoded_size(refs: list[ImageRef]) -> int:
    """Bytes to decode (a local file counts as large: its size is not read here)."""
    return sum(len(ref.data) if isinstance(ref.data, (bytes, str)) and ref.url.startswith(("data:", "http")) else 1 << 30 for ref in refs)


def decode_images(refs: list[ImageRef]) -> list[Image.Image]:
    """Decode every fetched image; 400 ``invalid_image`` when one cannot be decoded or cannot be given to Qwen2.5-VL.

    The aspect-ratio rule is checked here, not at generation: a batch fails as a whole,
    so one request's unusable image would fail every request batched with it.
    """
    images = []
    for ref in refs:
        assert ref.data is not None, "fetch_remote must run first"
        try:
            image = load_image(ref.data)
        except (ImageLoadError, Image.DecompressionBombError) as exc:
            raise bad_request(f"the image could not be decoded: {exc}", ref.param, "invalid_image") from exc
        width, height = image.size
        if max(width, height) / max(1, min(width, height)) > QWEN_MAX_ASPECT:
            raise bad_request(f"a {width}x{height} image exceeds Qwen2.5-VL's maximum aspect ratio of {QWEN_MAX_ASPECT}", ref.param, "invalid_image")
        images.append(image)
    return images


def _text_of(content: str | list | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def agent_question(request: ChatCompletionRequest) -> str:
    """The agent loop answers one question: the text of the last user message.

    Every image of the request goes with it, in order (see :func:`image_refs`); earlier
    text turns and client system messages are not part of the DeepEyes prompt and are not used.
    """
    users = [message for message in request.messages if message.role == "user"]
    if not users:
        raise bad_request("the request has no user message", "messages", "missing_user_message")
    question = escape_placeholders(_text_of(users[-1].content)).strip()
    if not question:
        raise bad_request("the last user message has no text question", "messages", "missing_question")
    return question


def conversation(request: ChatCompletionRequest, images: list[Image.Image]) -> list[Message]:
    """The conversation as given ("generate" mode): one ``<image>`` placeholder per image part, in place."""
    remaining = iter(images)
    messages = []
    for message in request.messages:
        if message.content is None or isinstance(message.content, str):
            text = message.content or ""
            messages.append(Message(message.role, text if message.role == "assistant" else escape_placeholders(text)))
            continue
        pieces, attached = [], []
        for part in message.content:
            if isinstance(part, TextPart):
                pieces.append(escape_placeholders(part.text) if message.role != "assistant" else part.text)
            else:
                pieces.append(IMAGE_PLACEHOLDER)
                attached.append(next(remaining))
        if attached and message.role == "assistant":
            raise bad_request("assistant messages cannot carry images", "messages", "invalid_message")
        messages.append(Message(message.role, "".join(pieces), attached))
    return messages
