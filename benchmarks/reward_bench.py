"""Reward figures: in-process scoring cost per answer type, and reward-server load.

    .venv/bin/python benchmarks/reward_bench.py --clients 50 --requests 20 --workers 1 2

Starts each server configuration as a real process on a free loopback port, fires
``--clients`` concurrent clients that each send ``--requests`` ``/score`` requests (a mix of
answer types), and prints throughput, latency percentiles and the error count. Figures
depend on the machine and its load: record them with the machine they came from.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from deepeyes import wire
from deepeyes.paths import REPO_ROOT
from deepeyes.rewards import score_response
from deepeyes.utils.processes import ManagedProcess, free_port, wait_until

SERVER = REPO_ROOT / "reinforcement_learning" / "evaluation_server" / "server.py"

#: (label, response, ground truth): one per matcher, with a code call in the tool case.
CASES: list[tuple[str, str, str]] = [
    ("text", wire.think("r") + wire.answer_action("The Eiffel Tower"), "eiffel tower"),
    ("choice", wire.think("r") + wire.answer_action("B. red"), "B"),
    ("number", wire.think("r") + wire.answer_action("3.1416"), "3.14"),
    ("math", wire.think("r") + wire.answer_action("\\frac{1}{2}"), "0.5"),
    (
        "tool+math",
        wire.think("c") + wire.code_action("print(1/2)") + wire.code_observation("0.5", "", 0)
        + wire.think("d") + wire.answer_action("1/2"),
        "\\frac{1}{2}",
    ),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_in_process(repeats: int) -> None:
    print(f"in-process score_response, {repeats} calls each (after one warm-up):")
    for label, response, truth in CASES:
        score_response(response, truth)
        start = time.perf_counter()
        for _ in range(repeats):
            score_response(response, truth)
        per_call_ms = 1000 * (time.perf_counter() - start) / repeats
        print(f"  {label:10s} {per_call_ms:8.2f} ms/call")


def start_server(workers: int, log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [sys.executable, str(SERVER), "--port", str(port), "--workers", str(workers), "--log-level", "WARNING"]
    process = ManagedProcess(argv, name=f"reward-server:{port}", log_path=log_dir / f"server-{workers}.log")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, 60, process.name, process.process)
    return process, url


def bench_server(workers: int, clients: int, per_client: int, log_dir: Path) -> None:
    process, url = start_server(workers, log_dir)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(number: int) -> None:
        session = requests.Session()
        barrier.wait()
        for i in range(per_client):
            _, response, truth = CASES[(number + i) % len(CASES)]
            start = time.perf_counter()
            try:
                reply = session.post(url + "/score", json={"response": response, "ground_truth": truth}, timeout=120)
                ok = reply.status_code == 200
            except requests.RequestException as exc:
                ok, reply = False, exc
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors.append(str(reply))

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(client, range(clients)))
        wall = time.perf_counter() - start
    finally:
        process.stop()
    total = clients * per_client
    print(
        f"  workers={workers:<2d} requests={total:<5d} errors={len(errors):<3d} "
        f"throughput={total / wall:7.1f} req/s  latency ms: mean={1000 * statistics.mean(latencies):7.1f} "
        f"p50={1000 * percentile(latencies, 0.5):7.1f} p95={1000 * percentile(latencies, 0.95):7.1f} "
        f"max={1000 * max(latencies):7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark reward scoring in-process and through the reward server.")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--requests", type=int, default=20, help="/score requests per client (default 20)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="server worker counts to try (1 = threaded single process)"
    )
    parser.add_argument("--repeats", type=int, default=200, help="in-process calls per answer type (default 200)")
    args = parser.parse_args()
    bench_in_process(args.repeats)
    print(f"reward server, {args.clients} concurrent clients x {args.requests} requests (mixed answer types):")
    with tempfile.TemporaryDirectory(prefix="reward-bench-") as log_dir:
        for workers in args.workers:
            bench_server(workers, args.clients, args.requests, Path(log_dir))


if __name__ == "__main__":
    main()
