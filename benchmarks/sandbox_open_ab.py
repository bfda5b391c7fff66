"""Compare the burst-open cost of several checkouts of this repository, interleaved in time.

A single burst of 64 opens on the 2-core machine varies by +-30 % with what else runs in its
50 ms, and the machine's state drifts over minutes, so two versions measured one after the
other can differ by more than any change between them (an A/A run of this script: 33.3
against 28.4 ms for identical code). This script alternates the versions round by round, a
fresh Redis and instance each time, discards each instance's first burst (its first
connections and allocations) and reports, per version, the median of the bursts' p50 and
the server's CPU per open summed over all bursts (which moves far less than latency).

    git worktree add /tmp/before HEAD~1
    python benchmarks/sandbox_open_ab.py before=/tmp/before after=. --rounds 4 --bursts 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHMARKS = Path(__file__).resolve().parent


def measure_one(bursts: int, burst_size: int, client_processes: int, pool_size: int, max_sessions: int) -> dict:
    """One instance of the ``deepeyes`` on ``sys.path``: ``bursts`` measured bursts after one warm-up.

    Returns ``{"p50_ms": [...], "server_cpu_ms_per_open": float}``.
    """
    import psutil
    from sandbox_bench import burst, cpu_seconds

    from deepeyes.sandbox.client import SandboxClient
    from deepeyes.sandbox.config import SandboxConfig
    from deepeyes.sandbox.launch import SandboxCluster
    from deepeyes.utils.processes import RedisServer

    with RedisServer() as redis_server:
        config = SandboxConfig(redis_host=redis_server.host, redis_port=redis_server.port, pool_size=pool_size,
                               max_sessions=max_sessions)
        with SandboxCluster(config, num_instances=1) as cluster:
            port = cluster.ports[0]
            server = psutil.Process(cluster.servers[0].process.pid)
            time.sleep(3)  # the pool has forked its kernels
            p50s, server_cpu = [], 0.0
            for index in range(bursts + 1):
                sessions = [f"ab-{index}-{n}-{uuid.uuid4().hex[:6]}" for n in range(burst_size)]
                before = cpu_seconds(server)
                times = burst(burst_size, client_processes,
                              lambda n, batch=sessions: SandboxClient([port]).open_session(batch[n]))
                if times.errors:
                    raise RuntimeError(f"{len(times.errors)} opens failed: {times.errors[0]}")
                if index:  # the first burst warms the instance up
                    server_cpu += cpu_seconds(server) - before
                    p50s.append(statistics.median(times.own) * 1e3)
    return {"p50_ms": p50s, "server_cpu_ms_per_open": server_cpu / (bursts * burst_size) * 1e3}


def run_in_checkout(checkout: Path, args: argparse.Namespace) -> dict:
    """:func:`measure_one` in a child process that imports ``deepeyes`` from ``checkout``."""
    call = (f"import json, sys; sys.path.insert(0, {str(BENCHMARKS)!r}); from sandbox_open_ab import measure_one; "
            f"print(json.dumps(measure_one({args.bursts}, {args.burst}, {args.client_processes}, {args.pool_size}, "
            f"{args.max_sessions})))")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", call], cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: the run in {checkout} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_versions(specs: list[str], parser: argparse.ArgumentParser) -> dict[str, Path]:
    versions: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        checkout = Path(path).resolve()
        if not sep or not name or not (checkout / "deepeyes" / "sandbox").is_dir():
            parser.error(f"{spec!r}: expected NAME=PATH, PATH a checkout of this repository")
        versions[name] = checkout
    return versions


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Interleaved A/B of the sandbox's burst opens across checkouts of this repository. Each round "
                    "runs every version once (a fresh Redis and instance, one warm-up burst discarded) and prints "
                    "its bursts' p50s and server CPU per open; the final table gives per version the median of "
                    "the bursts' p50 and the mean server CPU per open. Each PATH is imported with this "
                    "interpreter, so its dependencies must match this virtualenv's.",
        epilog="example: git worktree add /tmp/before HEAD~1 && "
               "python benchmarks/sandbox_open_ab.py before=/tmp/before after=.")
    parser.add_argument("versions", nargs="+", metavar="NAME=PATH", help="a name and a checkout of this repository")
    parser.add_argument("--rounds", type=int, default=4, help="rounds; each runs every version once (default: 4)")
    parser.add_argument("--bursts", type=int, default=6, help="measured bursts per run, after one warm-up (default: 6)")
    parser.add_argument("--burst", type=int, default=64, help="concurrent opens per burst (default: 64)")
    parser.add_argument("--client_processes", type=int, default=4, help="client processes per burst (default: 4)")
    parser.add_argument("--pool_size", type=int, default=4, help="pool_size of the instance (default: 4)")
    parser.add_argument("--max_sessions", type=int, default=32,
                        help="max_sessions of the instance (default: 32, so half of each burst evicts)")
    args = parser.parse_args()
    versions = parse_versions(args.versions, parser)
    if args.rounds < 1 or args.bursts < 1:
        parser.error("--rounds and --bursts must be at least 1")

    console = Console(width=140)
    p50s: dict[str, list[float]] = {name: [] for name in versions}
    cpus: dict[str, list[float]] = {name: [] for name in versions}
    for round_index in range(args.rounds):
        for name, checkout in versions.items():
            result = run_in_checkout(checkout, args)
            p50s[name] += result["p50_ms"]
            cpus[name].append(result["server_cpu_ms_per_open"])
            console.print(f"round {round_index + 1}/{args.rounds} {name}: burst p50s "
                          + " ".join(f"{p50:.0f}" for p50 in result["p50_ms"])
                          + f" ms; server CPU {result['server_cpu_ms_per_open']:.3f} ms per open")
    table = Table(title=f"{args.burst} concurrent opens per burst, {args.client_processes} client processes, "
                        f"pool_size {args.pool_size}, max_sessions {args.max_sessions}; {os.cpu_count()} CPUs")
    for column in ("version", "median of the bursts' p50", "bursts", "server CPU per open (per run)"):
        table.add_column(column)
    for name in versions:
        per_run = ", ".join(f"{cpu:.3f}" for cpu in cpus[name])
        table.add_row(name, f"{statistics.median(p50s[name]):.1f} ms", str(len(p50s[name])),
                      f"{statistics.mean(cpus[name]):.3f} ms ({per_run})")
    console.print(table)


if __name__ == "__main__":
    main()
