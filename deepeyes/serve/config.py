"""The inference service's settings: the shared model and tool groups, plus the service's own fields.

The command line is derived from the three dataclasses (``python -m deepeyes.serve --help``):
the model and tool flags are the ones every front end takes (:mod:`deepeyes.model_args`),
with the earlier service spellings (``--adapter``, ``--upstream_model``, ``--max_tokens``) kept
as aliases. ``model.temperature``, ``model.top_p`` and ``model.max_new_tokens`` are the
defaults of a request that names none; ``max_new_tokens`` and ``tools.max_turns`` are also the
most a request may ask for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepeyes.model_args import ModelArguments, ToolArguments


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``python -m deepeyes.serve`` (every field but ``model`` and ``tools`` is a ``--flag`` of the same name)."""

    #: The policy: a local model, or an OpenAI-compatible upstream (``model.api_base``).
    model: ModelArguments = field(default_factory=ModelArguments)
    #: The tools: the manager's YAML, the service-wide switches (added to each request's) and turn limit.
    tools: ToolArguments = field(default_factory=ToolArguments)
    served_model_name: str = field(default="deepeyes", metadata=_help("model id this service answers to (GET /v1/models)"))
    script_path: str | None = field(
        default=None,
        metadata=_help(
            "JSON file of scripted assistant turns (a list, or an object mapping question -> list) replayed instead of a "
            "model's text: deterministic tests and benchmarks"
        ),
    )
    script_generates: bool = field(
        default=False,
        metadata=_help("with --script_path: still run --model_path for every turn (real generation cost and batching), then replay the script's text"),
    )
    max_batch: int = field(default=32, metadata=_help("most concurrent turns generated in one batch (the RL engine's BatchingPolicy)"))
    gather_ms: float = field(default=20.0, metadata=_help("how long a batch waits for more concurrent turns (ms)"))

    # -- the agent loop -----------------------------------------------------------------------
    max_context_tokens: int = field(
        default=16384,
        metadata=_help("most tokens of a prompt: a longer first prompt gets HTTP 400 context_length_exceeded before any generation, "
                       "and a trajectory stops when its conversation reaches it"),
    )
    max_concurrent_requests: int = field(default=64, metadata=_help("agent loops running at once; further requests wait"))

    # -- request limits -----------------------------------------------------------------------
    max_request_mb: float = field(default=32.0, metadata=_help("largest request body (MiB); larger gets HTTP 413"))
    max_images: int = field(default=8, metadata=_help("most images in one request; more gets HTTP 400 too_many_images"))
    allow_local_images: bool = field(
        default=False,
        metadata=_help("accept image_url and video_url values that are local file paths or file:// URLs (trusted clients only)"),
    )
    max_videos: int = field(default=2, metadata=_help("most videos in one request; more gets HTTP 400 too_many_videos"))
    max_video_frames: int = field(
        default=64, metadata=_help("most frames a request may keep from one video (video_sampling.max_frames); more gets HTTP 400")
    )
    max_video_s: float = field(
        default=600.0, metadata=_help("longest video accepted (seconds of playback); longer gets HTTP 400 video_too_long")
    )
    image_fetch_timeout_s: float = field(default=10.0, metadata=_help("timeout for downloading an http(s) image_url or video_url"))
    allow_private_image_urls: bool = field(
        default=False,
        metadata=_help("fetch http(s) image_url and video_url values from loopback, private and link-local addresses too (trusted networks only)"),
    )
    image_url_hosts: str = field(
        default="", metadata=_help("comma-separated host names an http(s) image_url or video_url may name (empty: any public host)")
    )

    # -- the HTTP server ----------------------------------------------------------------------
    host: str = field(default="127.0.0.1", metadata=_help("interface to listen on"))
    allow_unauthenticated: bool = field(
        default=False,
        metadata=_help("serve a non-loopback --host without a bearer token ($DEEPEYES_API_KEY unset); not recommended"),
    )
    port: int = field(default=8000, metadata=_help("TCP port to listen on"))
    log_level: str = field(default="INFO", metadata=_help("logging level (DEBUG, INFO, WARNING, ERROR)"))

    def __post_init__(self) -> None:
        if self.max_images < 0 or self.max_videos < 0 or self.max_batch < 1:
            raise ValueError("max_images and max_videos must be >= 0 and max_batch >= 1")
        if self.max_video_frames < 1 or self.max_video_s <= 0:
            raise ValueError("max_video_frames must be >= 1 and max_video_s > 0")
        if self.script_generates and not self.script_path:
            raise ValueError("--script_generates needs --script_path")
        if self.script_path and not Path(self.script_path).is_file():
            raise FileNotFoundError(f"script file not found: {self.script_path}")

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)
