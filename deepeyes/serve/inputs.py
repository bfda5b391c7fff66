"""OpenAI chat messages → what the agent loop and the policies take.

Images arrive as ``image_url`` parts and videos as ``video_url`` parts (the part vLLM
accepts for Qwen2.5-VL): a ``data:`` URI, an http(s) URL (downloaded here, from public
addresses only unless the operator allows more: :mod:`deepeyes.serve.fetch`), or — only
when the service allows local files — a path or ``file://`` URL. Every image and video is
decoded before any model work starts, so an undecodable one fails the request with HTTP
400 naming the offending part. Videos are decoded once, with
:func:`deepeyes.videos.load_video`, into the frames the model, the tools and the
trajectory record share; one longer than the service's limit is refused before decoding.
"""

from __future__ import annotations

import base64
import binascii
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

import av
import httpx
from PIL import Image

from deepeyes.chat import Message
from deepeyes.images import QWEN_MAX_ASPECT, ImageLoadError, load_image
from deepeyes.serve.config import ServeConfig
from deepeyes.serve.errors import APIError, bad_request
from deepeyes.serve.fetch import FetchRefused
from deepeyes.serve.schemas import ChatCompletionRequest, ImagePart, TextPart, VideoPart
from deepeyes.videos import VideoClip, VideoLoadError, VideoSampling, load_video
from deepeyes.wire import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, escape_placeholders

logger = logging.getLogger(__name__)

MediaKind = Literal["image", "video"]


@dataclass
class MediaRef:
    """One ``image_url`` or ``video_url`` part, where it sits in the request, and its source (bytes once fetched)."""

    kind: MediaKind
    param: str  # e.g. "messages[1].content[0].image_url"
    url: str
    data: bytes | str | None = None  # bytes (downloaded), a data URI, or a local path


def media_refs(request: ChatCompletionRequest, config: ServeConfig) -> list[MediaRef]:
    """Every image and video part in order.

    Raises 400 ``too_many_images`` / ``too_many_videos`` over the service's limits, and
    ``invalid_image_url`` / ``invalid_video_url`` for a URL the service does not take.
    """
    refs = []
    for m, message in enumerate(request.messages):
        if not isinstance(message.content, list):
            continue
        for p, part in enumerate(message.content):
            if isinstance(part, ImagePart):
                refs.append(MediaRef("image", f"messages[{m}].content[{p}].image_url", part.image_url.url))
            elif isinstance(part, VideoPart):
                refs.append(MediaRef("video", f"messages[{m}].content[{p}].video_url", part.video_url.url))
    for kind, limit in (("image", config.max_images), ("video", config.max_videos)):
        count = sum(ref.kind == kind for ref in refs)
        if count > limit:
            raise bad_request(f"{count} {kind}s in the request; this service accepts at most {limit}", "messages", f"too_many_{kind}s")
    for ref in refs:
        _check_url(ref, config)
    return refs


def _check_url(ref: MediaRef, config: ServeConfig) -> None:
    """Sets ``ref.data`` for a data URI or an allowed local path; leaves it None for an http(s) URL (fetched later)."""
    code = f"invalid_{ref.kind}_url"
    scheme = urlparse(ref.url).scheme.lower()
    if ref.url.startswith("data:"):
        if not ref.url.startswith(f"data:{ref.kind}") or "," not in ref.url:
            raise bad_request(f"a data URI {ref.kind} must look like data:{ref.kind}/<type>;base64,<data>", ref.param, code)
        ref.data = ref.url
    elif scheme in ("http", "https"):
        return
    elif scheme in ("file", ""):
        if not config.allow_local_images:
            raise bad_request(f"local {ref.kind} paths are not accepted by this service (start it with --allow_local_images)", ref.param, code)
        ref.data = unquote(urlparse(ref.url).path) if scheme == "file" else ref.url
    else:
        raise bad_request(f"unsupported {ref.kind} URL scheme {scheme!r}: use a data URI or an http(s) URL", ref.param, code)


async def fetch_remote(refs: list[MediaRef], client: httpx.AsyncClient, config: ServeConfig) -> None:
    """Download the http(s) images and videos, each at most the request size limit.

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
                        raise APIError(413, f"{ref.kind} {ref.url} exceeds {config.max_request_bytes} bytes", param=ref.param, code="request_too_large")
                ref.data = bytes(body)
        except FetchRefused as exc:
            logger.info("%s_url refused: %s (%s)", ref.kind, ref.url, exc)
            raise bad_request(
                f"{ref.kind} {ref.url} is not fetched by this service: only public hosts"
                + (" among its allowed image hosts" if config.image_url_hosts else "")
                + " (loopback and private addresses need --allow_private_image_urls)",
                ref.param,
                f"invalid_{ref.kind}_url",
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            logger.info("%s_url fetch failed: %s (%s: %s)", ref.kind, ref.url, type(exc).__name__, exc)
            raise bad_request(f"{ref.kind} {ref.url} could not be fetched", ref.param, f"invalid_{ref.kind}_url") from exc


def encoded_size(refs: list[MediaRef]) -> int:
    """Bytes to decode (a local file counts as large: its size is not read here)."""
    return sum(len(ref.data) if isinstance(ref.data, (bytes, str)) and ref.url.startswith(("data:", "http")) else 1 << 30 for ref in refs)


def decode_images(refs: list[MediaRef]) -> list[Image.Image]:
    """Decode every fetched image (``refs`` of kind image); 400 ``invalid_image`` when one cannot be decoded or cannot be given to Qwen2.5-VL.

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


def video_sampling(request: ChatCompletionRequest, config: ServeConfig) -> VideoSampling:
    """The request's sampling (``video_sampling``; :class:`VideoSampling`'s defaults where unset).

    Raises 400 ``invalid_value`` when it asks for more frames per video than ``--max_video_frames``.
    """
    body, defaults = request.video_sampling, VideoSampling()
    max_frames = body.max_frames or defaults.max_frames
    if max_frames > config.max_video_frames:
        raise bad_request(f"video_sampling.max_frames {max_frames} exceeds this service's limit of {config.max_video_frames}",
                          "video_sampling.max_frames", "invalid_value")
    return VideoSampling(fps=body.fps or defaults.fps, max_frames=max_frames, max_pixels=body.max_pixels)


def decode_videos(refs: list[MediaRef], sampling: VideoSampling, config: ServeConfig) -> list[VideoClip]:
    """Decode every fetched video (``refs`` of kind video) into its sampled frames; blocking (run it off the event loop).

    Each clip's ``source`` is what the trajectory names: the URL or path as sent, or
    ``data:video/<type> (<n> bytes)`` for a data URI. Raises 400 ``video_too_long`` for a
    video whose container says it plays longer than ``--max_video_s`` (checked before any
    frame is decoded), and 400 ``invalid_video`` for bad base64 or a video that cannot be
    decoded (the message says why: no video stream, no decodable frame, …).
    """
    clips = []
    for ref in refs:
        assert ref.data is not None, "fetch_remote must run first"
        if isinstance(ref.data, str) and not ref.data.startswith("data:"):
            clips.append(_decode_video(Path(ref.data), ref.url, ref, sampling, config))
            continue
        payload = ref.data if isinstance(ref.data, bytes) else _data_uri_bytes(ref)
        source = f"{ref.data.partition(';')[0]} ({len(payload)} bytes)" if isinstance(ref.data, str) else ref.url
        with tempfile.NamedTemporaryFile(prefix="deepeyes-video-", suffix=".video") as file:
            file.write(payload)
            file.flush()
            clips.append(_decode_video(Path(file.name), source, ref, sampling, config))
    return clips


def _data_uri_bytes(ref: MediaRef) -> bytes:
    assert isinstance(ref.data, str)
    header, _, payload = ref.data.partition(",")
    if ";base64" not in header:
        raise bad_request("a data URI video must be base64-encoded (data:video/<type>;base64,<data>)", ref.param, "invalid_video")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_request(f"the video's data URI is not valid base64: {exc}", ref.param, "invalid_video") from exc


def _decode_video(path: Path, source: str, ref: MediaRef, sampling: VideoSampling, config: ServeConfig) -> VideoClip:
    duration = playback_s(path)
    if duration is not None and duration > config.max_video_s:
        raise bad_request(f"the video plays for {duration:.1f} s; this service accepts videos of at most {config.max_video_s:g} s",
                          ref.param, "video_too_long")
    try:
        clip = load_video(path, sampling)
    except VideoLoadError as exc:
        raise bad_request(f"the video could not be decoded: {str(exc).replace(str(path), source)}", ref.param, "invalid_video") from exc
    return VideoClip(source, clip.frames, clip.timestamps)


def playback_s(path: Path) -> float | None:
    """How long a video file plays, from its container's header (no frame is decoded).

    None for a folder of frames, or when the header does not say or cannot be read (decoding
    then reports why).
    """
    if not path.is_file():
        return None
    try:
        with av.open(str(path), "r") as container:
            if container.duration is not None:
                return container.duration / av.time_base
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is not None and stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError):
        return None
    return None


def _text_of(content: str | list | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def agent_question(request: ChatCompletionRequest) -> str:
    """The agent loop answers one question: the text of the last user message.

    Every image and video of the request goes with it, in order (see :func:`media_refs`); earlier
    text turns and client system messages are not part of the DeepEyes prompt and are not used.
    """
    users = [message for message in request.messages if message.role == "user"]
    if not users:
        raise bad_request("the request has no user message", "messages", "missing_user_message")
    question = escape_placeholders(_text_of(users[-1].content)).strip()
    if not question:
        raise bad_request("the last user message has no text question", "messages", "missing_question")
    return question


def conversation(request: ChatCompletionRequest, images: list[Image.Image], videos: list[VideoClip]) -> list[Message]:
    """The conversation as given ("generate" mode): one ``<image>`` / ``<video>`` placeholder per image / video part, in place."""
    remaining_images, remaining_videos = iter(images), iter(videos)
    messages = []
    for message in request.messages:
        if message.content is None or isinstance(message.content, str):
            text = message.content or ""
            messages.append(Message(message.role, text if message.role == "assistant" else escape_placeholders(text)))
            continue
        pieces, attached, clips = [], [], []
        for part in message.content:
            if isinstance(part, TextPart):
                pieces.append(escape_placeholders(part.text) if message.role != "assistant" else part.text)
            elif isinstance(part, VideoPart):
                pieces.append(VIDEO_PLACEHOLDER)
                clips.append(next(remaining_videos))
            else:
                pieces.append(IMAGE_PLACEHOLDER)
                attached.append(next(remaining_images))
        if (attached or clips) and message.role == "assistant":
            raise bad_request("assistant messages cannot carry images or videos", "messages", "invalid_message")
        messages.append(Message(message.role, "".join(pieces), attached, clips))
    return messages
