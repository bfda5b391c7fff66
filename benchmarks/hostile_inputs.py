"""Re-run the hostile inputs quoted in issue 30 (items 4, 5, 10, 11, 12) and print what each gives now.

    .venv/bin/python benchmarks/hostile_inputs.py               # everything
    .venv/bin/python benchmarks/hostile_inputs.py --skip_service # without the tiny-model service

Real components only: the reward server is started as its own process on a free loopback port
(``reinforcement_learning/evaluation_server/server.py``), the inference service is served by
uvicorn on loopback with the tiny Qwen2.5-VL, the parser is the package's. Figures depend on
the machine and its load: record them with the machine they came from. Nothing here asserts;
the tests under tests/ do (tests/core/test_wire_linear.py, tests/rewards/test_reward_bounds.py,
tests/rewards/test_reward_hostile.py, tests/serve/test_hostile_requests.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from deepeyes import wire
from deepeyes.paths import REPO_ROOT, TINY_MODEL_DIR
from deepeyes.utils.processes import ManagedProcess, free_port, wait_until
from deepeyes.wire.parse import parse_turn
from deepeyes.wire.response import trajectory_from_response

SERVER = REPO_ROOT / "reinforcement_learning" / "evaluation_server" / "server.py"
TOKEN = "benchmark-token"
#: The issue's answer, then variants of the same kind of fault.
ANSWERS = ["9^{9^{9}}", "9^{(9^{9})}", "9**9**9", "e^{e^{e^{9}}}", "\\exp(\\exp(\\exp(9)))", "9^{9\\cdot 9^{9}}", "(10^{6})!",
           "\\binom{10^{9}}{5 \\cdot 10^{8}}", "0.5^{10^{9}}", "(x+1)^{9000}", "(x+y+1)^{300}"]  # fmt: skip


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def wire_section() -> None:
    print("## item 10: unmatched tags in the grammar's parser (CPU seconds of one call)")
    old_think = re.compile(re.escape(wire.THINK_OPEN) + r".*?" + re.escape(wire.THINK_CLOSE), re.DOTALL)
    for count in (1_000, 2_000, 4_000):
        text = wire.THINK_OPEN * count
        _, seconds = timed(old_think.sub, " ", text)
        print(f"  old regex  re.sub(<think>.*?</think>)  {count:>7,} x <think>: {seconds:8.3f} s")
    for count in (10_000, 40_000, 160_000):
        text = wire.THINK_OPEN * count + wire.answer_action("42")
        parsed, seconds = timed(parse_turn, text)
        print(f"  parse_turn                            {count:>7,} x <think>: {seconds:8.3f} s -> "
              f"{parsed.action.kind} {parsed.action.content!r} {parsed.violations}")
    for opening in (wire.TOOL_RESPONSE_OPEN + "\n", "Code execution result:\nstdout:\n```\n"):
        for count in (10_000, 40_000):
            trajectory, seconds = timed(trajectory_from_response, opening * count + wire.answer_action("7"))
            print(f"  text route {opening.splitlines()[0][:24]!r:<28} {count:>7,} x: {seconds:8.3f} s -> "
                  f"{len(trajectory.turns)} turn(s), answer {trajectory.final_answer!r}")


def reward_section() -> None:
    print("\n## items 4, 11, 12: the reward server (one threaded process on loopback, math_timeout_s 5)")
    folder = Path(tempfile.mkdtemp(prefix="hostile-reward-"))
    port = free_port()
    started = time.perf_counter()
    process = ManagedProcess([sys.executable, str(SERVER), "--port", str(port)], name="reward-server", log_path=folder / "server.log",
                             env={"PYTHONPATH": str(REPO_ROOT), "DEEPEYES_REWARD_TOKEN": TOKEN})
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def ready() -> bool:
        try:
            return requests.get(url + "/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(ready, 300, process.name, process.process)
        print(f"  server ready in {time.perf_counter() - started:.1f} s (warm-up loads sympy once, in the check template)")
        health: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                status = requests.get(url + "/health", timeout=30).status_code
                health.append(time.perf_counter() - t0 if status == 200 else float("inf"))
                time.sleep(0.1)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        for answer in ANSWERS:
            body = {"response": f"<think>r</think>\n<answer>{answer}</answer>", "ground_truth": "1"}
            response, seconds = timed(lambda payload=body: requests.post(url + "/score", json=payload, headers=auth, timeout=120))
            result = response.json()
            print(f"  {answer:<34} {seconds:6.2f} s  accuracy {result['accuracy']}  reason: {result['details']['accuracy_reason']}")
        replies: list[float] = []

        def one(answer: str) -> None:
            body = {"response": f"<answer>{answer}</answer>", "ground_truth": "1"}
            replies.append(timed(lambda: requests.post(url + "/score", json=body, headers=auth, timeout=120))[1])

        threads = [threading.Thread(target=one, args=(answer,)) for answer in ANSWERS * 2]
        _, seconds = timed(lambda: [t.start() for t in threads] and [t.join() for t in threads])
        print(f"  {len(threads)} of them at once: all answered in {seconds:.2f} s (slowest reply {max(replies):.2f} s)")
        body = {"response": "<answer>\\frac{1}{2}</answer>", "ground_truth": "0.5"}
        result, seconds = timed(lambda: requests.post(url + "/score", json=body, headers=auth, timeout=120).json())
        print(f"  then \\frac{{1}}{{2}} vs 0.5: accuracy {result['accuracy']} in {seconds:.2f} s")
        stop.set()
        prober.join()
        print(f"  /health during all of it: {len(health)} probes, all 200: {all(h != float('inf') for h in health)}, "
              f"slowest {max(health):.2f} s")
        for depth in (5_000, 100_000):
            response = requests.post(url + "/score", data="[" * depth + "]" * depth, headers={**auth, "Content-Type": "application/json"}, timeout=60)
            print(f"  JSON nested {depth:,} deep: HTTP {response.status_code} {response.json()}")
        response = requests.post(url + "/score", json=body, timeout=60)
        print(f"  without the token: HTTP {response.status_code} {response.json()}")
    finally:
        process.stop()


def service_section() -> None:
    print("\n## items 5, 11, 12: the inference service (uvicorn on loopback, tiny Qwen2.5-VL, max_context_tokens 16384)")
    import uvicorn

    from deepeyes.model_args import ModelArguments
    from deepeyes.serve import ServeConfig, create_app
    from deepeyes.tool_manager import ToolManager, ToolManagerConfig, ToolsConfig

    os.environ.pop("DEEPEYES_API_KEY", None)
    config = ServeConfig(model=ModelArguments(model_path=str(TINY_MODEL_DIR), max_new_tokens=4), port=free_port())
    with ToolManager(config=ToolManagerConfig(tools=ToolsConfig(enabled=[]))) as tools:
        app = create_app(config, tool_manager=tools, token=TOKEN)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{config.port}/v1/chat/completions"
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            question = "How many dots are there? " + "dot " * (2 * 1024 * 1024 // 4)
            body = json.dumps({"model": "deepeyes", "messages": [{"role": "user", "content": question}]})
            response, seconds = timed(lambda: requests.post(base, data=body, headers=auth, timeout=600))
            error = response.json()["error"]
            print(f"  2 MB question ({len(body):,} bytes): HTTP {response.status_code} code {error['code']!r} in {seconds:.2f} s; "
                  f"batches generated: {sum(b.batches for b in app.state.serve.backend.batching)}")
            print(f"    {error['message']}")
            nested = '{"model": "deepeyes", "messages": ' + "[" * 5_000 + "]" * 5_000 + "}"
            response = requests.post(base, data=nested, headers=auth, timeout=60)
            print(f"  JSON nested 5,000 deep: HTTP {response.status_code} code {response.json()['error']['code']!r}")
            for url in (f"http://127.0.0.1:{config.port}/health", f"http://127.0.0.1:{free_port()}/x.png", "http://169.254.169.254/latest/meta-data/"):
                body = json.dumps({"model": "deepeyes", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "q"}]}]})
                response = requests.post(base, data=body, headers=auth, timeout=60)
                print(f"  image_url {url}: HTTP {response.status_code} {response.json()['error']['code']!r}: {response.json()['error']['message']}")
            response = requests.post(base, data=json.dumps({"model": "deepeyes", "messages": [{"role": "user", "content": "hi"}]}),
                                     headers={"Content-Type": "application/json"}, timeout=60)
            print(f"  without the API key: HTTP {response.status_code} code {response.json()['error']['code']!r}")
            response, seconds = timed(lambda: requests.post(base, data=json.dumps({"model": "deepeyes", "messages": [{"role": "user", "content": "hi"}], "max_turns": 1}), headers=auth, timeout=600))
            print(f"  then an ordinary question: HTTP {response.status_code} in {seconds:.2f} s")
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description="Re-run issue 30's hostile inputs (items 4, 5, 10, 11, 12) and print what each gives now.")
    parser.add_argument("--skip_reward_server", action="store_true", help="do not start the reward server")
    parser.add_argument("--skip_service", action="store_true", help="do not start the inference service")
    args = parser.parse_args()
    wire_section()
    if not args.skip_reward_server:
        reward_section()
    if not args.skip_service:
        service_section()


if __name__ == "__main__":
    main()
