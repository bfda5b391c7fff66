"""Request and response bodies of ``/v1/chat/completions`` (OpenAI's chat completion shapes).

The standard fields follow OpenAI's API reference; DeepEyes' switches are extra body
fields (``extra_body=`` in the official client). Fields a client may send that the
service does not use (``user``, ``seed`` …) are accepted and ignored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageURL(BaseModel):
    url: str  # data URI, http(s) URL, or (when the service allows it) a local path / file:// URL
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class VideoURL(BaseModel):
    url: str  # data:video/… URI, http(s) URL, or (when the service allows local files) a path / file:// URL


class VideoPart(BaseModel):
    """A video content part, as vLLM accepts it for Qwen2.5-VL (``{"type": "video_url", "video_url": {"url": …}}``)."""

    type: Literal["video_url"]
    video_url: VideoURL


ContentPart = Annotated[TextPart | ImagePart | VideoPart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class VideoSamplingBody(BaseModel):
    """How this request's videos are sampled (:class:`deepeyes.videos.VideoSampling`; unset fields keep its defaults)."""

    model_config = ConfigDict(extra="forbid")

    fps: float | None = Field(default=None, gt=0.0)
    max_frames: int | None = Field(default=None, ge=1)
    max_pixels: int | None = Field(default=None, ge=1)


class ChatCompletionRequest(BaseModel):
    """One ``POST /v1/chat/completions`` body."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)  # OpenAI's newer name for max_tokens
    n: int = Field(default=1, ge=1, le=1)
    #: Stop strings. A request that sets them drives its own agent loop (``mode`` "generate").
    stop: str | list[str] | None = None
    include_stop_str_in_output: bool = False  # vLLM's extension, sent by deepeyes.policies.openai

    # -- DeepEyes extra body fields -------------------------------------------------------------
    #: "agent": run the agent loop with tools here and answer; "generate": write one turn of the
    #: conversation as given (a client-side agent loop). Default: "generate" when ``stop`` is set.
    mode: Literal["agent", "generate"] | None = None
    disable_tools: list[str] = Field(default_factory=list)  # tools this request may not use
    force_no_tool: bool = False  # the seed's switch, as everywhere: no tools, one direct answer under the no-tool prompt
    max_turns: int | None = Field(default=None, ge=1)
    sample_index: str | None = None  # key of the first image in the image-search cache, when known
    video_sampling: VideoSamplingBody = Field(default_factory=VideoSamplingBody)  # frames kept from each video

    @property
    def resolved_mode(self) -> Literal["agent", "generate"]:
        if self.mode is not None:
            return self.mode
        return "generate" if self.stop else "agent"

    @property
    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ToolCallUsage(BaseModel):
    model_config = ConfigDict(extra="allow")  # one integer per tool kind (deepeyes.trajectory.TOOL_KINDS)

    invalid: int = 0
    failed: int = 0
    repeated: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    turns: int = 0
    tool_calls: ToolCallUsage = Field(default_factory=ToolCallUsage)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    #: The whole trajectory (deepeyes/trajectory.schema.json); absent in "generate" mode.
    trajectory: dict[str, Any] | None = None


class ChunkDelta(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None  # the turn's <think> text (the field vLLM uses for reasoning)
    #: What the turn did: ``{"index", "action": {"kind", "content"}, "observation": {"status",
    #: "image_count", "latency_s", "summary"} | None}``.
    deepeyes_turn: dict[str, Any] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    trajectory: dict[str, Any] | None = None  # on the chunk that carries finish_reason


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "deepeyes"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
