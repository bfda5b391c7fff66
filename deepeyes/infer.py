"""Answer one question about images and videos with the agent loop, streaming every turn.

    python -m deepeyes.infer --image photo.png --question "How many red circles?"
    python -m deepeyes.infer --video clip.mp4 --video frames/ --question "Which way does the square move?"

Runs on the tiny default model unless ``--model_path`` (a Qwen2.5-VL directory or hub id,
fetched once into the hub cache) or
``--api_base`` (an OpenAI-compatible server, e.g. vLLM serving DeepEyesV2) is given; the model
and tool flags are the ones every front end shares (:mod:`deepeyes.model_args`). The
Redis and sandbox services it needs are started on loopback when the tool-manager config
names none, and stopped on exit. ``--force_no_tool`` means what it means everywhere: no
tools for this question, one direct answer under the no-tool prompt.

A ``--video`` is a video file or a folder of frame images (sorted by name), decoded here
once, with the request's sampling (``--video_fps``, ``--video_max_frames``,
``--video_max_pixels``; :class:`~deepeyes.model_args.VideoArguments`), into the frames the
model, the tools and the trajectory record all share. An unreadable image or video ends the
command with one line naming the file and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from deepeyes.agent import AgentLoop, AgentRequest
from deepeyes.cli import QuietLoggingArguments, parse_cli
from deepeyes.images import ImageLoadError, load_image
from deepeyes.model_args import (
    ALIASES,
    ModelArguments,
    ToolArguments,
    build_policy,
    build_tool_manager,
)
from deepeyes.policies.tool_gate import ToolGateUnsupported
from deepeyes.tools.registry import REGISTRY
from deepeyes.trajectory import Trajectory, Turn, write_jsonl
from deepeyes.videos import (
    DEFAULT_FPS,
    DEFAULT_MAX_FRAMES,
    VideoClip,
    VideoLoadError,
    VideoSampling,
    load_video,
)

DESCRIPTION = (
    "Ask a question about one or more images or videos. The model reasons, may run Python on them "
    "(stateful Jupyter sandbox), search text or images, and answers. Each turn is printed as it happens."
)


@dataclass(frozen=True)
class InferArguments:
    """The question, its images and videos, and how the videos' frames are taken (per request).

    The model and tools are :class:`ModelArguments` and :class:`ToolArguments`. The video
    sampling flags default to :class:`~deepeyes.videos.VideoSampling`'s values.
    """

    question: str = field(metadata={"help": "the question to answer"})
    image: list[str] = field(
        default_factory=list,
        metadata={"help": "input image(s): image_1, image_2, ... in the order given (repeatable)", "action": "append"},
    )
    video: list[str] = field(
        default_factory=list,
        metadata={"help": "input video(s), shown after the images: a video file or a folder of frame images "
                          "sorted by name (repeatable; sampling: --video_fps, --video_max_frames, --video_max_pixels)",
                  "action": "append"},
    )
    video_fps: float = field(
        default=DEFAULT_FPS,
        metadata={"help": "frames kept per second of a video file; a folder's frames are taken as shot at this rate"},
    )
    video_max_frames: int = field(
        default=DEFAULT_MAX_FRAMES, metadata={"help": "at most this many frames of one video, spread evenly from first to last"}
    )
    video_max_pixels: int | None = field(
        default=None,
        metadata={"help": "area limit of one video frame in pixels: larger frames are scaled down before the model and the "
                          "tools see them (default: none here; the model's video processor applies its own limit, which also caps this one)"},
    )
    sample_index: str | None = field(default=None, metadata={"help": "key of this image in the image-search cache, when known"})
    trajectory_out: str | None = field(
        default=None, metadata={"help": "append the trajectory (JSONL, shared schema) to this file"}
    )

    def __post_init__(self) -> None:
        if not self.image and not self.video:
            raise ValueError("give at least one --image or --video")
        try:
            self.video_sampling()
        except ValueError as exc:  # VideoSampling's messages open with its field name: name the flag instead
            raise ValueError(f"video_{exc}") from exc

    def video_sampling(self) -> VideoSampling:
        """The sampling of this request's videos."""
        return VideoSampling(self.video_fps, self.video_max_frames, self.video_max_pixels)


def parse_args(argv: Sequence[str] | None = None) -> tuple[InferArguments, ModelArguments, ToolArguments, QuietLoggingArguments]:
    """The question, model and tool settings; exits 2 on a bad flag or value."""
    return parse_cli(  # type: ignore[return-value]
        [InferArguments, ModelArguments, ToolArguments, QuietLoggingArguments],
        argv, prog="python -m deepeyes.infer", description=DESCRIPTION, aliases=ALIASES,
    )


def load_videos(paths: Sequence[str], sampling: VideoSampling) -> list[VideoClip]:
    """Each ``--video`` decoded with ``sampling``, frames over ``sampling.max_pixels`` scaled down.

    Raises:
        VideoLoadError: a path that is missing, not a video, or a folder without readable frames (named in the message).
    """
    return [load_video(Path(path), sampling) for path in paths]


def make_request(
    args: InferArguments, model: ModelArguments, tools: ToolArguments, images: list, videos: list[VideoClip] | None = None
) -> AgentRequest:
    """The agent request of one question: the tool switches, sampling and videos of the command line travel with it."""
    request = AgentRequest(
        question=args.question,
        images=images,
        sample_index=args.sample_index,
        disabled_tools=tools.disable_tools,
        force_no_tool=tools.force_no_tool,
        sampling=model.sampling(),
        videos=list(videos or []),
        video_sampling=args.video_sampling(),
    )
    request.metadata["image_paths"] = [str(path) for path in args.image]
    return request


def print_turn(console: Console, turn: Turn) -> None:
    console.print(Panel(turn.model_text or "(empty)", title=f"turn {turn.index + 1} · model", title_align="left"), markup=False)
    action = turn.action
    if action.kind in REGISTRY.names():
        console.print(f"[bold]tool input[/bold] ({action.kind}): {action.content or '(original image)'}", highlight=False)
    elif action.kind == "invalid":
        console.print(f"[bold red]invalid action[/bold red]: {action.reason}", highlight=False)
    if turn.observation is not None:
        obs = turn.observation
        console.print(
            Panel(obs.text, title=f"tool output · {obs.status} · {obs.image_count} image(s) · {obs.latency_s * 1000:.0f} ms", title_align="left"),
            markup=False,
        )


def print_videos(console: Console, videos: list[VideoClip]) -> None:
    for number, clip in enumerate(videos, start=1):
        width, height = clip.frames[0].size
        console.print(
            f"video {number}: {clip.source} · {len(clip.frames)} frame(s) of {width}x{height} · "
            f"{clip.timestamps[0]:.2f}-{clip.timestamps[-1]:.2f} s",
            highlight=False, markup=False, soft_wrap=True,  # one line: a path broken across lines cannot be copied
        )


def main(argv: Sequence[str] | None = None) -> int:
    args, model, tools, logging_args = parse_args(argv)
    logging_args.configure()
    console = Console()
    try:
        images = [load_image(Path(path)) for path in args.image]
        videos = load_videos(args.video, args.video_sampling())
    except (ImageLoadError, VideoLoadError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)  # one line, never wrapped
        return 2
    print_videos(console, videos)
    try:
        policy = build_policy(model)
    except (ToolGateUnsupported, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    request = make_request(args, model, tools, images, videos)

    def on_turn(_: Trajectory, turn: Turn, __: list) -> None:
        print_turn(console, turn)

    with ExitStack() as stack:
        # force_no_tool needs no tool services: the request runs without tools either way.
        tool_manager = None if tools.force_no_tool else build_tool_manager(tools)
        if tool_manager is not None:
            stack.enter_context(tool_manager)
        loop = AgentLoop(tool_manager, tools.agent_config(use_tools=tool_manager is not None))
        rollout = loop.rollout(policy, request, on_turn=on_turn)
    trajectory = rollout.trajectory
    trajectory.images = [str(path) for path in args.image]
    console.print(f"[bold green]final answer:[/bold green] {trajectory.final_answer}  (stop: {trajectory.stop_reason}, turns: {len(trajectory.turns)})", highlight=False)
    if args.trajectory_out:
        write_jsonl(Path(args.trajectory_out), [trajectory])
        console.print(f"trajectory appended to {args.trajectory_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
