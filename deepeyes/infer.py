"""Answer one image question with the agent loop, streaming every turn.

    python -m deepeyes.infer --image photo.png --question "How many red circles?"

Runs on the tiny default model unless ``--model_path`` (a Qwen2.5-VL directory or hub id,
fetched once into the hub cache) or
``--api_base`` (an OpenAI-compatible server, e.g. vLLM serving DeepEyesV2) is given; the model
and tool flags are the ones every front end shares (:mod:`deepeyes.model_args`). The
Redis and sandbox services it needs are started on loopback when the tool-manager config
names none, and stopped on exit. ``--force_no_tool`` means what it means everywhere: no
tools for this question, one direct answer under the no-tool prompt.
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

DESCRIPTION = (
    "Ask a question about one or more images. The model reasons, may run Python on the images "
    "(stateful Jupyter sandbox), search text or images, and answers. Each turn is printed as it happens."
)


@dataclass(frozen=True)
class InferArguments:
    """The question; the model and tools are :class:`ModelArguments` and :class:`ToolArguments`."""

    image: list[str] = field(
        metadata={"help": "input image(s): image_1, image_2, ... in the order given (repeatable)", "action": "append"}
    )
    question: str = field(metadata={"help": "the question to answer"})
    sample_index: str | None = field(default=None, metadata={"help": "key of this image in the image-search cache, when known"})
    trajectory_out: str | None = field(
        default=None, metadata={"help": "append the trajectory (JSONL, shared schema) to this file"}
    )


def parse_args(argv: Sequence[str] | None = None) -> tuple[InferArguments, ModelArguments, ToolArguments, QuietLoggingArguments]:
    """The question, model and tool settings; exits 2 on a bad flag or value."""
    return parse_cli(  # type: ignore[return-value]
        [InferArguments, ModelArguments, ToolArguments, QuietLoggingArguments],
        argv, prog="python -m deepeyes.infer", description=DESCRIPTION, aliases=ALIASES,
    )


def make_request(args: InferArguments, model: ModelArguments, tools: ToolArguments, images: list) -> AgentRequest:
    """The agent request of one question: the tool switches and sampling of the command line travel with it."""
    request = AgentRequest(
        question=args.question,
        images=images,
        sample_index=args.sample_index,
        disabled_tools=tools.disable_tools,
        force_no_tool=tools.force_no_tool,
        sampling=model.sampling(),
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


def main(argv: Sequence[str] | None = None) -> int:
    args, model, tools, logging_args = parse_args(argv)
    logging_args.configure()
    console = Console()
    try:
        images = [load_image(Path(path)) for path in args.image]
    except ImageLoadError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        policy = build_policy(model)
    except (ToolGateUnsupported, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    request = make_request(args, model, tools, images)

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
