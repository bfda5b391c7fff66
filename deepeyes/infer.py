"""Answer one image question with the agent loop, streaming every turn.

    python -m deepeyes.infer --image photo.png --question "How many red circles?"

Runs on the tiny default model unless ``--model_path`` (a Qwen2.5-VL directory or hub id,
fetched once into the hub cache) or
``--api_base`` (an OpenAI-compatible server, e.g. vLLM serving DeepEyesV2) is given. The
Redis and sandbox services it needs are started on loopback when the tool-manager config
names none, and stopped on exit.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.cli import QuietLoggingArguments, parse_cli
from deepeyes.images import ImageLoadError, load_image
from deepeyes.paths import TINY_MODEL_DIR, TOOL_MANAGER_CONFIG
from deepeyes.policies.base import Policy
from deepeyes.policies.tool_gate import ToolGateUnsupported, check_remote_support
from deepeyes.tool_manager import ToolManager
from deepeyes.tools.registry import REGISTRY
from deepeyes.trajectory import Trajectory, Turn, write_jsonl

DESCRIPTION = (
    "Ask a question about one or more images. The model reasons, may run Python on the images "
    "(stateful Jupyter sandbox), search text or images, and answers. Each turn is printed as it happens."
)
#: Earlier spellings still accepted (not shown in --help).
ALIASES = {"--adapter": "adapter_path", "--no_tools": "no:use_tools"}


@dataclass(frozen=True)
class InferArguments:
    image: list[str] = field(
        metadata={"help": "input image(s): image_1, image_2, ... in the order given (repeatable)", "action": "append"}
    )
    question: str = field(metadata={"help": "the question to answer"})
    model_path: str = field(default=str(TINY_MODEL_DIR), metadata={"help": "Qwen2.5-VL directory or hub id (e.g. honglyhly/DeepEyesV2_7B_1031)"})
    adapter_path: str | None = field(default=None, metadata={"help": "LoRA adapter directory or hub id applied on top of --model_path"})
    api_base: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (overrides --model_path)"}
    )
    served_model: str = field(default="deepeyes", metadata={"help": "model name requested from --api_base"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature (0: greedy)"})
    max_new_tokens: int = field(default=512, metadata={"help": "token limit of one model turn"})
    device: str = field(default="cpu", metadata={"help": "torch device for --model_path"})
    tool_manager_config: str = field(default=str(TOOL_MANAGER_CONFIG), metadata={"help": "tool manager YAML"})
    max_turns: int = field(default=8, metadata={"help": "stop after this many model turns"})
    disable_tools: list[str] = field(
        default_factory=list, metadata={"help": f"tools the model may not use (of {', '.join(REGISTRY.accepted_names())}; space- or comma-separated)"}
    )
    use_tools: bool = field(default=True, metadata={"help": "false (--no_use_tools): single turn, no tools (plain VQA)"})
    force_no_tool: bool = field(
        default=False,
        metadata={"help": "the model must answer without calling a tool (the seed's force_no_tool): tool openers get probability 0 and every tool is disabled"},
    )
    tool_call_threshold: float = field(
        default=0.0,
        metadata={"help": "0..1, local models only: a tool call is opened only when the model gives it at least this probability (the higher, the fewer calls)"},
    )
    sample_index: str | None = field(default=None, metadata={"help": "key of this image in the image-search cache, when known"})
    trajectory_out: str | None = field(
        default=None, metadata={"help": "append the trajectory (JSONL, shared schema) to this file"}
    )

    def __post_init__(self) -> None:
        names = [name.strip() for entry in self.disable_tools for name in entry.split(",") if name.strip()]
        unknown = sorted(set(names) - set(REGISTRY.accepted_names()))
        if unknown:
            raise ValueError(f"--disable_tools: unknown tool(s) {unknown} (known: {', '.join(REGISTRY.accepted_names())})")
        object.__setattr__(self, "disable_tools", names)
        if self.max_turns < 1:
            raise ValueError(f"--max_turns must be >= 1, got {self.max_turns}")
        if not 0.0 <= self.tool_call_threshold <= 1.0:
            raise ValueError(f"--tool_call_threshold must be in [0, 1], got {self.tool_call_threshold}")


def parse_args(argv: Sequence[str] | None = None) -> tuple[InferArguments, QuietLoggingArguments]:
    """The question, model and tool settings; exits 2 on a bad flag or value."""
    return parse_cli(  # type: ignore[return-value]
        [InferArguments, QuietLoggingArguments], argv, prog="python -m deepeyes.infer", description=DESCRIPTION, aliases=ALIASES
    )


def make_policy(args: InferArguments) -> Policy:
    """The local model (a directory or hub id) with the tool-call switches, or a server client.

    Raises:
        ToolGateUnsupported: ``tool_call_threshold`` > 0 with ``--api_base`` (a server's
            token probabilities are not visible here).
        FileNotFoundError: the model or adapter cannot be found or fetched.
    """
    if args.api_base:
        from deepeyes.policies.openai import OpenAIPolicy

        check_remote_support(args.tool_call_threshold, args.force_no_tool)
        return OpenAIPolicy(args.api_base, args.served_model, temperature=args.temperature, max_tokens=args.max_new_tokens)
    from deepeyes.policies.hf import HFPolicy

    return HFPolicy(  # a directory or a hub id (deepeyes.hub.resolve)
        args.model_path,
        adapter_path=args.adapter_path,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        tool_call_threshold=args.tool_call_threshold,
        force_no_tool=args.force_no_tool,
    )


def make_tool_manager(args: InferArguments) -> ToolManager | None:
    """The tool manager (not started), with ``--disable_tools`` applied; every tool off under ``--force_no_tool``."""
    if not args.use_tools:
        return None
    tool_manager = ToolManager.from_config(args.tool_manager_config)
    disabled = list(REGISTRY.names()) if args.force_no_tool else list(args.disable_tools)
    if disabled:
        tool_manager.disable_tools(disabled)
    return tool_manager


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
    args, logging_args = parse_args(argv)
    logging_args.configure()
    console = Console()
    try:
        images = [load_image(Path(path)) for path in args.image]
    except ImageLoadError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        policy = make_policy(args)
    except (ToolGateUnsupported, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    config = AgentConfig(max_turns=args.max_turns, use_tools=args.use_tools)
    tool_manager = make_tool_manager(args)
    request = AgentRequest(question=args.question, images=images, sample_index=args.sample_index)
    request.metadata["image_paths"] = [str(path) for path in args.image]

    def on_turn(_: Trajectory, turn: Turn) -> None:
        print_turn(console, turn)

    if tool_manager is not None:
        with tool_manager:
            rollout = AgentLoop(tool_manager, config).rollout(policy, request, on_turn=on_turn)
    else:
        rollout = AgentLoop(None, config).rollout(policy, request, on_turn=on_turn)
    trajectory = rollout.trajectory
    trajectory.images = [str(path) for path in args.image]
    console.print(f"[bold green]final answer:[/bold green] {trajectory.final_answer}  (stop: {trajectory.stop_reason}, turns: {len(trajectory.turns)})", highlight=False)
    if args.trajectory_out:
        write_jsonl(Path(args.trajectory_out), [trajectory])
        console.print(f"trajectory appended to {args.trajectory_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
