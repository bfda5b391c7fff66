"""Sandbox latency and throughput next to the floor (a bare jupyter_client round trip).

    .venv/bin/python benchmarks/sandbox_bench.py [--calls 200] [--instances 2]

Starts a throw-away Redis and ``--instances`` real sandbox servers, and in the same process a
plain ipykernel (``KernelManager``, no sandbox) as the floor. Floor and sandbox calls are
interleaved so that load from other processes hits both alike. Prints one table.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from jupyter_client import KernelManager
from PIL import Image
from rich.console import Console
from rich.table import Table

from deepeyes.sandbox.client import SandboxClient
from deepeyes.sandbox.config import SandboxConfig
from deepeyes.sandbox.launch import SandboxCluster
from deepeyes.utils.processes import RedisServer, wait_until

TRIVIAL = "x += 1; x"
FIGURE = ("fig = plt.figure(figsize=(5.12, 5.12), dpi=100)\n"
          "plt.plot(np.sin(np.linspace(0, 20, 500)))\nplt.show()")
SETUP = "import numpy as np\nimport matplotlib.pyplot as plt\nx = 0"
T = TypeVar("T")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Floor:
    """One warm plain kernel driven with ``execute_interactive`` in this process."""

    def __init__(self) -> None:
        self.manager = KernelManager()
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.run("%matplotlib inline\n" + SETUP)

    def run(self, code: str) -> None:
        reply = self.client.execute_interactive(code, output_hook=lambda _msg: None, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def timed(call: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def side_by_side(floor: Floor, client: SandboxClient, session: str, code: str,
                 calls: int) -> tuple[list[float], list[float], list[float]]:
    """Alternate floor and sandbox calls so that outside load affects both alike.

    Returns floor times, sandbox times seen by the client, and the sandbox's own
    ``execution_time`` (inside the instance, without HTTP).
    """
    floor_times, sandbox_times, server_times = [], [], []
    for _ in range(calls):
        floor_times.append(timed(functools.partial(floor.run, code))[0])
        elapsed, result = timed(functools.partial(client.execute, session, code))
        assert result.status == "success", result.stderr
        sandbox_times.append(elapsed)
        server_times.append(result.execution_time)
    return floor_times, sandbox_times, server_times


def wait_for_warm_pools(client: SandboxClient, pool_size: int) -> None:
    wait_until(lambda: all(h and h["warm_kernels"] >= pool_size for h in client.health().values()), 300, "warm pools")


def new_session_times(client: SandboxClient, pool_size: int, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        wait_for_warm_pools(client, pool_size)
        sid = f"bench-open-{uuid.uuid4().hex[:8]}"
        times.append(timed(functools.partial(client.open_session, sid))[0])
        client.close_session(sid)
    return times


def restore_times(cluster: SandboxCluster, client: SandboxClient, pool_size: int, samples: int) -> list[float]:
    """First call of a session on an instance that does not hold it (state comes from Redis)."""
    times = []
    image = Image.new("RGB", (512, 512), "gray")
    for _ in range(samples):
        sid = f"bench-restore-{uuid.uuid4().hex[:8]}"
        client.open_session(sid, [image])
        client.execute(sid, SETUP + "\nrows = [list(range(100)) for _ in range(100)]\ndef f(v):\n    return v * 2")
        holder = client.instances_for(sid)[0]
        other = next(port for port in cluster.ports if not holder.endswith(f":{port}"))
        wait_for_warm_pools(client, pool_size)
        with SandboxClient([other]) as elsewhere:
            elapsed, result = timed(functools.partial(elsewhere.execute, sid, "f(len(rows))"))
            assert result.result == "200", result
            times.append(elapsed)
        client.close_session(sid)
    return times


def throughput(client: SandboxClient, sessions: int, seconds: float, pool_size: int) -> tuple[float, int, int]:
    """Calls/s with ``sessions`` concurrent sessions, each looping the trivial call."""
    ids = [f"bench-tp-{sessions}-{i}-{uuid.uuid4().hex[:6]}" for i in range(sessions)]
    for sid in ids:
        client.execute(sid, "x = 0")
    wait_for_warm_pools(client, pool_size)  # no kernel start-ups competing with the measurement
    stop = threading.Event()

    def loop(sid: str) -> tuple[int, int]:
        done = errors = 0
        while not stop.is_set():
            result = client.execute(sid, TRIVIAL)
            done += 1
            errors += result.status != "success"
        return done, errors

    with ThreadPoolExecutor(max_workers=sessions) as executor:
        futures = [executor.submit(loop, sid) for sid in ids]
        time.sleep(seconds)
        stop.set()
        counts = [future.result() for future in futures]
    for sid in ids:
        client.close_session(sid)
    total = sum(done for done, _ in counts)
    return total / seconds, total, sum(errors for _, errors in counts)


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the code sandbox against a bare jupyter_client round trip.")
    parser.add_argument("--calls", type=int, default=200, help="trivial calls measured (default: 200)")
    parser.add_argument("--figure_calls", type=int, default=20, help="figure calls measured (default: 20)")
    parser.add_argument("--instances", type=int, default=2, help="sandbox server instances (default: 2)")
    parser.add_argument("--pool_size", type=int, default=2, help="warm kernels per instance (default: 2)")
    parser.add_argument("--throughput_s", type=float, default=10.0, help="seconds per throughput level (default: 10)")
    args = parser.parse_args()

    console = Console(width=160)
    load_before = os.getloadavg()[0]
    rows: list[tuple[str, str, str, str]] = []
    with RedisServer() as redis_server:
        config = SandboxConfig(redis_host=redis_server.host, redis_port=redis_server.port, pool_size=args.pool_size)
        floor = Floor()
        try:
            with SandboxCluster(config, num_instances=args.instances) as cluster, cluster.client() as client:
                session = "bench-main"
                client.execute(session, SETUP)
                wait_for_warm_pools(client, args.pool_size)
                for label, code, calls, target in (("warm trivial call `x += 1; x`", TRIVIAL, args.calls, "target <= 1.5x, <= 15 ms"),
                                                   ("one 512x512 figure", FIGURE, args.figure_calls, "target <= 1.2x")):
                    floor_times, http_times, server_times = side_by_side(floor, client, session, code, calls)
                    f50, h50 = statistics.median(floor_times), statistics.median(http_times)
                    sandbox_cell = (f"p50 {h50 * 1e3:.1f} ms, p95 {percentile(http_times, 0.95) * 1e3:.1f} ms "
                                    f"(in the instance: p50 {statistics.median(server_times) * 1e3:.1f} ms)")
                    rows.append((label, sandbox_cell,
                                 f"p50 {f50 * 1e3:.1f} ms, p95 {percentile(floor_times, 0.95) * 1e3:.1f} ms",
                                 f"{h50 / f50:.2f}x ({target})"))
                opened = new_session_times(client, args.pool_size, 5)
                rows.append(("new session from the warm pool", f"p50 {statistics.median(opened) * 1e3:.1f} ms, max {max(opened) * 1e3:.1f} ms",
                             "-", "target <= 50 ms"))
                restored = restore_times(cluster, client, args.pool_size, 3)
                rows.append(("restore-from-Redis session start (+ one call)",
                             f"p50 {statistics.median(restored) * 1e3:.1f} ms", "-", "512x512 image + 3 names"))
                client.close_session(session)
                for level in (1, 4, 16):
                    rate, total, errors = throughput(client, level, args.throughput_s, args.pool_size)
                    rows.append((f"throughput, {level} concurrent sessions", f"{rate:.1f} calls/s", "-",
                                 f"{total} calls, {errors} errors"))
        finally:
            floor.close()

    table = Table(title=f"code sandbox: {args.instances} instances, {os.cpu_count()} CPUs, "
                        f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    for column in ("measure", "sandbox over HTTP", "floor: bare jupyter_client", "ratio / note"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("Reference, DeepEyesV2's published design (fresh kernel per request, whole namespace through Redis): "
                  "~1 s per trivial call, ~0.8 calls/s at 4 concurrent sessions.")


if __name__ == "__main__":
    main()
