"""Agent-loop benchmark: per-turn loop overhead, and tool/generation overlap under concurrency.

    .venv/bin/python benchmarks/agent_bench.py

1. Loop overhead per turn = (wall time − policy time − tool time) / turns, with a
   zero-latency scripted policy and real sandbox calls. Target ≤ 2 ms.
2. Overlap: a policy that takes 200 ms per turn and is a single engine (one generation at
   a time, as one model on one device), tools that take 100 ms (real sandbox code that
   sleeps), 16 concurrent trajectories. Reported as wall time ÷ the generation time
   alone (the same policy work with no tool time). Target ≤ 1.3×.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from PIL import Image

from deepeyes import wire
from deepeyes.agent import AgentConfig, AgentLoop, AgentRequest
from deepeyes.chat import Message
from deepeyes.policies.base import Generation, SamplingParams
from deepeyes.policies.scripted import ScriptedPolicy
from deepeyes.tool_manager import ToolManager, ToolManagerConfig, ToolsConfig


class SingleEnginePolicy:
    """Wraps a policy so that only one generation runs at a time, each taking ``latency_s``."""

    def __init__(self, inner: ScriptedPolicy, latency_s: float):
        self.inner = inner
        self.latency_s = latency_s
        self._lock = threading.Lock()

    def generate(self, messages: list[Message], sampling: SamplingParams | None = None) -> Generation:
        with self._lock:
            time.sleep(self.latency_s)
            return self.inner.generate(messages, sampling)


def script(tool_turns: int, code: str) -> list[str]:
    return [wire.think(f"step {i}") + wire.code_action(f"{code}\nprint({i})") for i in range(tool_turns)] + [
        wire.think("done") + wire.answer_action("4")
    ]


def wait_for_full_pool(tools: ToolManager, timeout_s: float = 120.0) -> None:
    """Measure with every warm kernel ready, as a long-running service would be."""
    client = tools.sandbox_client
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reports = [r for r in client.health().values() if r]
        if reports and all(r["warm_kernels"] >= r["pool_size"] for r in reports):
            return
        time.sleep(0.2)
    raise TimeoutError("sandbox pool did not refill")


def loop_overhead(tools: ToolManager, trajectories: int, tool_turns: int) -> list[float]:
    loop = AgentLoop(tools, AgentConfig(max_turns=tool_turns + 1))
    policy = ScriptedPolicy(script(tool_turns, "x = 1"))
    image = Image.new("RGB", (64, 64), "white")
    overheads = []
    for _ in range(trajectories):
        started = time.perf_counter()
        trajectory = loop.run(policy, [image], "q")
        wall = time.perf_counter() - started
        busy = trajectory.timing["generation_s"] + trajectory.timing["tools_s"]
        overheads.append((wall - busy) / len(trajectory.turns))
    return overheads


def overlap(tools: ToolManager, concurrency: int, tool_turns: int, gen_s: float, tool_s: float) -> tuple[float, float]:
    loop = AgentLoop(tools, AgentConfig(max_turns=tool_turns + 1, concurrency=concurrency))
    policy = SingleEnginePolicy(ScriptedPolicy(script(tool_turns, f"import time\ntime.sleep({tool_s})")), gen_s)
    image = Image.new("RGB", (64, 64), "white")
    requests = [AgentRequest(question=f"q{i}", images=[image]) for i in range(concurrency)]
    wait_for_full_pool(tools)
    started = time.perf_counter()
    rollouts = loop.run_batch(policy, requests)
    wall = time.perf_counter() - started
    assert all(r.trajectory.final_answer == "4" for r in rollouts), "a trajectory did not finish"
    generation_alone = concurrency * (tool_turns + 1) * gen_s
    return wall, generation_alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=30, help="trajectories for the overhead measurement")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tool_turns", type=int, default=3, help="code calls per trajectory before the answer")
    args = parser.parse_args()

    config = ToolManagerConfig(tools=ToolsConfig(enabled=["code"]))
    config.sandbox.pool_size = args.concurrency
    config.sandbox.max_sessions = max(config.sandbox.max_sessions, args.concurrency * 2)
    with ToolManager(config=config) as tools:
        overheads = loop_overhead(tools, args.trajectories, args.tool_turns)
        wall, alone = overlap(tools, args.concurrency, args.tool_turns, gen_s=0.2, tool_s=0.1)
    overheads_ms = sorted(o * 1000 for o in overheads)
    print(f"{'figure':<58} {'value':>10}  target")
    print(f"{'loop overhead per turn, p50 (ms)':<58} {statistics.median(overheads_ms):>10.3f}  <= 2")
    print(f"{'loop overhead per turn, max (ms)':<58} {overheads_ms[-1]:>10.3f}")
    print(f"{f'{args.concurrency} concurrent trajectories, wall (s)':<58} {wall:>10.2f}")
    print(f"{'generation alone (s)':<58} {alone:>10.2f}")
    print(f"{'wall / generation alone':<58} {wall / alone:>10.3f}  <= 1.3")


if __name__ == "__main__":
    main()
