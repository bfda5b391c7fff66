"""Many trajectories at once through our verl agent loop, against a stand-in server on loopback.

verl's agent-loop worker starts every trajectory of its share of the batch at once
(``AgentLoopWorker.generate_sequences`` gathers one task per sample) and awaits the inference
server. Our loop is synchronous, so each trajectory runs on a thread while it waits. This
script runs ``--trajectories`` of them in one worker (one event loop, as in verl), each turn a
request to an HTTP server on loopback that answers after ``--latency-ms`` (a stand-in for
vLLM), and prints per variant the wall time, trajectories per second and the most requests the
server saw at once:

- ``default executor``: the event loop's default executor, ``min(32, cpus + 4)`` threads;
- ``TrajectoryThreads``: what ``DeepEyesAgentLoop`` uses, a pool that grows with the
  trajectories in flight.

The variants alternate ``--rounds`` times. Turns need no tools (an unparsable turn, then an
answer), so the figures are the loop's own concurrency, not the sandbox's.

    python benchmarks/verl_agent_loop_bench.py --trajectories 128 --latency-ms 100 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TURNS = ("<think>Let me look closer.</think>", "<think>Still looking.</think>", "<think>Done.</think>\n<answer>3</answer><|im_end|>")


class StandInServer:
    """An aiohttp server on loopback, on its own thread and event loop: ``POST /generate`` sleeps
    ``latency_s`` and returns the ids of the requested turn; it counts requests in flight."""

    def __init__(self, turn_ids: list[list[int]], latency_s: float):
        self.turn_ids = turn_ids
        self.latency_s = latency_s
        self.in_flight = 0
        self.peak = 0
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._serve, daemon=True, name="stand-in-server").start()
        self._ready.wait(30)

    async def _generate(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        return web.json_response({"token_ids": self.turn_ids[min(body["turn"], len(self.turn_ids) - 1)]})

    def _serve(self) -> None:
        from aiohttp import web

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/generate", self._generate)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}/generate"
            self._ready.set()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def reset(self) -> None:
        self.peak = 0


class ServerManager:
    """verl's server-manager interface (``generate(request_id, prompt_ids, sampling_params, image_data)``)
    over HTTP to the stand-in; the turn is how many times the request id has asked."""

    def __init__(self, url: str):
        self.url = url
        self.turns: dict[str, int] = {}
        self._session: Any = None

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict, image_data: Any = None, **_: Any) -> Any:
        import aiohttp
        from verl.workers.rollout.replica import TokenOutput

        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        turn = self.turns.get(request_id, 0)
        self.turns[request_id] = turn + 1
        async with self._session.post(self.url, json={"turn": turn}) as response:
            ids = (await response.json())["token_ids"]
        return TokenOutput(token_ids=ids, log_probs=[-0.1] * len(ids))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class DefaultExecutor:
    """The event loop's default executor, as ``loop.run_in_executor(None, ...)`` uses it."""

    async def run(self, function: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, function)


def build(args: argparse.Namespace) -> dict[str, Any]:
    """What every variant shares: verl's composed config, the tiny model's processor, rows, the server."""
    import verl.trainer.config as verl_config
    from hydra import compose, initialize_config_dir
    from transformers import AutoProcessor

    from deepeyes.paths import TINY_MODEL_DIR
    from deepeyes.rl import verl_launch
    from deepeyes.rl.config import load_rl_config
    from deepeyes.tool_manager import ToolManager

    config = load_rl_config(
        REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml",
        ["trainer.engine=verl", "algorithm.filter_groups.enable=false", "rollout.max_turns=3", f"output.dir={REPO_ROOT / 'outputs' / 'verl_agent_loop_bench'}"],
    )
    with initialize_config_dir(config_dir=str(Path(verl_config.__file__).parent), version_base=None):
        composed = compose(config_name="ppo_trainer", overrides=verl_launch.build_overrides(config, verl_launch.VerlPaths.plan(config), "http://127.0.0.1:1"))
    processor = AutoProcessor.from_pretrained(TINY_MODEL_DIR)
    tokenizer = processor.tokenizer
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    turn_ids = [tokenizer.encode(text.removesuffix("<|im_end|>"), add_special_tokens=False) + [im_end] for text in TURNS]
    rows = [
        {
            "raw_prompt": [{"role": "user", "content": f"How many circles are in picture {i}?"}],
            "reward_model": {"ground_truth": "3"},
            "extra_info": {"index": i, "question": f"How many circles are in picture {i}?"},
            "data_source": "bench",
            "index": i,
        }
        for i in range(args.trajectories)
    ]
    return {
        "composed": composed, "processor": processor, "tokenizer": tokenizer, "rows": rows,
        "tools": ToolManager(), "server": StandInServer(turn_ids, args.latency_ms / 1000),
    }  # fmt: skip


def run_variant(shared: dict[str, Any], threads: Any) -> dict[str, float]:
    """All trajectories on one event loop, as one verl agent-loop worker runs its share."""
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from deepeyes.rl.verl_agent_loop import DeepEyesAgentLoop

    server: StandInServer = shared["server"]
    server.reset()

    async def batch() -> float:
        manager = ServerManager(server.url)

        async def one(row: dict[str, Any]) -> Any:
            loop = DeepEyesAgentLoop(
                trainer_config=DictConfigWrap(shared["composed"]), server_manager=manager, tokenizer=shared["tokenizer"],
                processor=shared["processor"], dataset_cls=RLHFDataset, data_config=DictConfigWrap(shared["composed"].data),
                hf_model_type="qwen2_5_vl", tool_manager=shared["tools"], max_turns=3, max_new_tokens=32, threads=threads,
            )  # fmt: skip
            return await loop.run({"temperature": 1.0}, **row)

        started = time.perf_counter()
        outputs = await asyncio.gather(*(one(row) for row in shared["rows"]))
        wall = time.perf_counter() - started
        await manager.close()
        assert all(output.num_turns == 2 * len(TURNS) for output in outputs)  # every trajectory ran its three turns
        return wall

    wall = asyncio.run(batch())
    return {"wall_s": wall, "per_s": len(shared["rows"]) / wall, "peak": float(server.peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=128, help="trajectories in flight in one worker (default %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="the stand-in server's time per turn (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two variants (default %(default)s)")
    args = parser.parse_args()

    from deepeyes.rl.verl_agent_loop import TrajectoryThreads

    shared = build(args)
    variants = {"default executor": DefaultExecutor, "TrajectoryThreads": TrajectoryThreads}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    run_variant(shared, TrajectoryThreads())  # warm-up: imports, first tokenizer and builder calls
    for _ in range(args.rounds):
        for name, make in variants.items():
            results[name].append(run_variant(shared, make()))

    cpus = os.cpu_count() or 1
    print(f"{args.trajectories} trajectories x {len(TURNS)} turns, stand-in server {args.latency_ms:.0f} ms per turn, "
          f"{cpus} CPUs (default executor: {min(32, cpus + 4)} threads); median of {args.rounds} rounds")  # fmt: skip
    print(f"{'variant':<20} {'wall s':>8} {'traj/s':>8} {'peak requests in flight':>24}")
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        per_s = statistics.median(r["per_s"] for r in runs)
        peak = max(r["peak"] for r in runs)
        print(f"{name:<20} {wall:>8.2f} {per_s:>8.1f} {peak:>24.0f}")
    ideal = len(TURNS) * args.latency_ms / 1000
    print(f"(all in flight at once would take {ideal:.2f} s: {len(TURNS)} turns x the server's latency)")


if __name__ == "__main__":
    main()
