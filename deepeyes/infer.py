"""Answer one image question with the agent loop, streaming every turn.

    python -m deepeyes.infer --image photo.png --question "How many red circles?"

Runs on the tiny default model unless ``--model_path`` (a local Qwen2.5-VL directory) or
``--api_base`` (an OpenAI-compatible server, e.g. vLLM serving DeepEyesV2) is given. The
Redis and sandbox services it needs are started on loopback when the tool-manager config
names none, and stopped on exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.images import ImageLoadError, load_image
from deepeyes.paths import TINY_MODEL_DIR, TOOL_MANAGER_CONFIG
from deepeyes.policies.base import Policy
from deepeyes.tool_manager import ToolManager
from deepeyes.tools.registry import REGISTRY
from deepeyes.trajectory import Trajectory, Turn, write_jsonl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepeyes.infer",
        description=(
            "Ask a question about one or more images. The model reasons, may run Python on the images "
            "(stateful Jupyter sandbox), search text or images, and answers. Each turn is printed as it happens."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--image", action="append", required=True, type=Path, help="input image (repeat for several: image_1, image_2, …)")
    parser.add_argument("--question", required=True, help="the question to answer")
    model = parser.add_argument_group("model (a local checkpoint, or an OpenAI-compatible server)")
    model.add_argument("--model_path", type=Path, default=TINY_MODEL_DIR, help="local Qwen2.5-VL directory")
    model.add_argument("--adapter", type=Path, default=None, help="LoRA adapter directory to apply on top of --model_path")
    model.add_argument("--api_base", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (overrides --model_path)")
    model.add_argument("--served_model", default="deepeyes", help="model name to request from --api_base")
    model.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (0 = greedy)")
    model.add_argument("--max_new_tokens", type=int, default=512, help="token limit of one turn")
    model.add_argument("--device", default="cpu", help="torch device for --model_path")
    agent = parser.add_argument_group("agent loop and tools")
    agent.add_argument("--tool_manager_config", type=Path, default=TOOL_MANAGER_CONFIG, help="tool manager YAML")
    agent.add_argument("--max_turns", type=int, default=8, help="stop after this many model turns")
    agent.add_argument("--disable_tools", default="", help=f"comma-separated tools the model may not use ({', '.join(REGISTRY.accepted_names())})")
    agent.add_argument("--no_tools", action="store_true", help="single turn, no tools (plain VQA)")
    agent.add_argument("--sample_index", default=None, help="key of this image in the image-search cache, when known")
    parser.add_argument("--trajectory_out", type=Path, default=None, help="append the trajectory (JSONL, shared schema) to this file")
    parser.add_argument("--verbose", action="store_true", help="log service start-up and tool details")
    return parser


def make_policy(args: argparse.Namespace) -> Policy:
    if args.api_base:
        from deepeyes.policies.openai import OpenAIPolicy

        return OpenAIPolicy(args.api_base, args.served_model, temperature=args.temperature, max_tokens=args.max_new_tokens)
    from deepeyes.policies.hf import HFPolicy

    return HFPolicy(
        args.model_path, adapter_path=args.adapter, temperature=args.temperature, max_new_tokens=args.max_new_tokens, device=args.device
    )


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    try:
        images = [load_image(path) for path in args.image]
    except ImageLoadError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    disabled = [tool.strip() for tool in args.disable_tools.split(",") if tool.strip()]
    policy = make_policy(args)
    config = AgentConfig(max_turns=args.max_turns, use_tools=not args.no_tools)
    tool_manager = None if args.no_tools else ToolManager.from_config(args.tool_manager_config)
    if tool_manager is not None and disabled:
        tool_manager.disable_tools(disabled)
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
        write_jsonl(args.trajectory_out, [trajectory])
        console.print(f"trajectory appended to {args.trajectory_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
