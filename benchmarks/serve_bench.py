"""Inference-service benchmark: concurrent OpenAI clients against ``python -m deepeyes.serve``.

    .venv/bin/python benchmarks/serve_bench.py [--clients 32] [--requests 5]

Starts the real service (a subprocess, the tiny model, its own Redis and sandbox) with a
script that makes every request call code once (a figure comes back) and then answer.
The model still generates every turn (``--script_generates``: real generation cost and
batching through the RL engine's BatchingPolicy); the script supplies the text, so every
request takes the same path. ``--clients`` threads each send ``--requests`` requests with
the official ``openai`` client, one after another.

Prints errors (target 0), throughput, p50/p95 latency as the clients see it, and the
service's own overhead per request beyond generation and tools (target <= 5 ms p50), two
ways: the CPU time the service spent on the request itself (request parsing, images, the
loop's bookkeeping, serialisation; ``x-deepeyes-overhead-cpu-ms``), and the wall time from
reading the request to the serialised response minus generation and tool time
(``x-deepeyes-overhead-ms``), which also counts waiting for a CPU. Timings on a shared,
loaded machine are inflated (the wall figure most): say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import openai
import yaml
from PIL import Image

from deepeyes import wire
from deepeyes.images import to_data_url
from deepeyes.paths import REPO_ROOT, TINY_MODEL_DIR
from deepeyes.utils.processes import free_port

SCRIPT = [
    wire.think("Let me look closer.") + wire.code_action("display(image_1.resize((32, 32)))\nprint(image_1.size)"),
    wire.think("Seen.") + wire.answer_action("red"),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_service(workdir: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    script = workdir / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    tools = workdir / "tool_manager_config.yaml"
    tools.write_text(yaml.safe_dump({
        "tools": {"enabled": ["code"]},
        "sandbox": {"pool_size": args.warm_kernels, "max_sessions": 2 * args.clients},
    }), encoding="utf-8")
    port = free_port()
    argv = [
        sys.executable, "-m", "deepeyes.serve", "--model_path", str(args.model_path), "--script_path", str(script),
        "--max_tokens", str(args.max_tokens), "--max_batch", str(args.clients),
        "--tool_manager_config", str(tools), "--port", str(port), "--log_level", args.log_level,
    ]
    if not args.script_only:
        argv.append("--script_generates")
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=open(workdir / "serve.log", "w"))  # noqa: SIM115
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited; see {workdir / 'serve.log'}:\n{(workdir / 'serve.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                return process, root
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise TimeoutError("the service did not become healthy in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=5, help="requests per client, one after another")
    parser.add_argument("--model_path", type=Path, default=TINY_MODEL_DIR)
    parser.add_argument("--max_tokens", type=int, default=16, help="tokens the model generates per turn")
    parser.add_argument("--warm_kernels", type=int, default=8, help="sandbox kernels kept warm")
    parser.add_argument("--script_only", action="store_true", help="no model at all: the script's text without generation (isolates the service)")
    parser.add_argument("--log_level", default="WARNING", help="the service's log level (INFO: one line per request in serve.log)")
    args = parser.parse_args()

    image = to_data_url(Image.new("RGB", (64, 64), "red"))
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "What colour is it?"}]}]
    latencies: list[float] = []
    overheads: list[float] = []
    overheads_cpu: list[float] = []
    generation: list[float] = []
    tools: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        process, root = start_service(Path(tmp), args)
        try:
            client = openai.OpenAI(base_url=f"{root}/v1", api_key="unused", max_retries=0, timeout=600)
            for _ in range(3):  # warm-up: first kernel, first batch
                client.chat.completions.create(model="deepeyes", messages=messages)

            def worker() -> None:
                own = openai.OpenAI(base_url=f"{root}/v1", api_key="unused", max_retries=0, timeout=600)
                for _ in range(args.requests):
                    started = time.perf_counter()
                    try:
                        raw = own.chat.completions.with_raw_response.create(model="deepeyes", messages=messages)
                        completion = raw.parse()
                        elapsed = time.perf_counter() - started
                        timing = completion.model_extra["trajectory"]["timing"]
                        ok = completion.choices[0].message.content == "red" and completion.usage.model_dump()["tool_calls"]["code"] == 1
                        with lock:
                            if not ok:
                                errors.append(f"unexpected completion: {completion.choices[0].message.content!r}")
                                continue
                            latencies.append(elapsed)
                            overheads.append(float(raw.headers["x-deepeyes-overhead-ms"]))
                            overheads_cpu.append(float(raw.headers["x-deepeyes-overhead-cpu-ms"]))
                            generation.append(timing["generation_s"])
                            tools.append(timing["tools_s"])
                    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=worker) for _ in range(args.clients)]
            wall_started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - wall_started
        finally:
            process.terminate()
            process.wait(timeout=60)

    total = args.clients * args.requests
    model = "no model (script only)" if args.script_only else "tiny model"
    print(f"{args.clients} clients x {args.requests} requests, {model} + one scripted code call with a figure per request")
    print(f"(timings taken on a shared machine loaded by other work, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: "
          "absolute figures are inflated; the wall overhead includes waiting for a CPU, the CPU-time figure does not)")
    print(f"{'figure':<52} {'value':>10}  target")
    print(f"{'requests / errors':<52} {f'{total}/{len(errors)}':>10}  0 errors")
    if latencies:
        print(f"{'throughput (requests/s)':<52} {len(latencies) / wall:>10.2f}")
        print(f"{'latency p50 (s)':<52} {statistics.median(latencies):>10.3f}")
        print(f"{'latency p95 (s)':<52} {percentile(latencies, 0.95):>10.3f}")
        print(f"{'generation per request p50 (s)':<52} {statistics.median(generation):>10.3f}")
        print(f"{'tools per request p50 (s)':<52} {statistics.median(tools):>10.3f}")
        print(f"{'service overhead per request, CPU time p50 (ms)':<52} {statistics.median(overheads_cpu):>10.3f}  <= 5")
        print(f"{'service overhead per request, CPU time p95 (ms)':<52} {percentile(overheads_cpu, 0.95):>10.3f}")
        print(f"{'service overhead per request, wall p50 (ms)':<52} {statistics.median(overheads):>10.3f}  <= 5")
        print(f"{'service overhead per request, wall p95 (ms)':<52} {percentile(overheads, 0.95):>10.3f}")
    for error in errors[:5]:
        print("error:", error)


if __name__ == "__main__":
    main()
