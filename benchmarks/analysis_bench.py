"""Behaviour-analysis throughput and memory: N trajectories through the full report.

    .venv/bin/python benchmarks/analysis_bench.py --n 100000

Writes an RL output folder (``trajectories.jsonl`` over ``--steps`` steps plus
``metrics.jsonl``) of synthetic but schema-valid trajectories — six task categories with
their own tool habits, code calls of every operation class with varying numbers (so the
classifier's cache rarely helps), a tool-call rate that decays over the steps — then runs
``python -m deepeyes.analysis`` on it in a child process and prints its wall time and peak
resident memory (the child's ``ru_maxrss``) against the issue's limits (60 s, 2 GB), and its
CPU time, which a loaded shared machine inflates far less than the wall time.

Figures depend on the machine and its load (printed alongside); record them with both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deepeyes import wire
from deepeyes.trajectory import SCHEMA_VERSION

#: category → (tool the task needs, or None; code templates it tends to run)
CATEGORIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "chart": ("code", (
        "from PIL import Image\nimg = Image.open('/tmp/input.png')\nw, h = img.size\nimg.crop(({a}, {b}, w - {c}, h - {a})).resize((w * 2, h * 2)).save('/tmp/crop.png')",
        "import numpy as np\nvalues = [{a}, {b}, {c}]\nprint(np.mean(values), (values[0] - values[2]) / {b})",
    )),
    "fine_detail": ("code", (
        "from PIL import Image, ImageEnhance\nimg = Image.open('/tmp/input.png').convert('L')\nImageEnhance.Contrast(img).enhance({a} / 10).save('/tmp/e.png')",
        "import cv2\nimg = cv2.imread('/tmp/input.png')\nzoom = cv2.resize(img[{a}:{b}, {b}:{c}], None, fx=3, fy=3)\ncv2.imwrite('/tmp/z.png', zoom)",
    )),
    "counting": ("code", (
        "import numpy as np\nfrom PIL import Image\nmask = np.array(Image.open('/tmp/input.png').convert('L')) > {a}\nprint(np.count_nonzero(mask))",
        "import cv2\ngray = cv2.cvtColor(cv2.imread('/tmp/input.png'), cv2.COLOR_BGR2GRAY)\ncontours, _ = cv2.findContours(gray, cv2.RETR_EXTERNAL, {b})\nprint(len(contours))",
    )),
    "math": ("code", (
        "import math\nprint(math.sqrt({a} ** 2 + {b} ** 2) * {c})",
        "total = 0\nfor x in range({a}):\n    total += x * {b}\nprint(total / {c})",
    )),
    "knowledge": ("search", ("print('{a}')",)),
    "plain_vqa": (None, ("import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [{a}, {b}])\nplt.savefig('/tmp/p.png')",)),
}
THOUGHT = "Looking at the image, the relevant region is small, so I should inspect it more closely before answering. " * 3


def _turn(index: int, kind: str, content: str, rng: random.Random) -> dict[str, Any]:
    text = {"code": wire.code_action, "search": wire.text_search_action, "answer": wire.answer_action}[kind](content) if kind != "image_search" else wire.image_search_action()
    observation = None
    if kind != "answer":
        status = "error" if rng.random() < 0.1 else "success"
        observation = {
            "text": ("Traceback (most recent call last): ValueError" if status == "error" else "result: " + "0.5 " * 40),
            "image_count": int(kind == "code" and rng.random() < 0.5),
            "status": status,
            "latency_s": round(rng.uniform(0.05, 2.0), 3),
            "repeated": rng.random() < 0.05,
        }
    return {
        "index": index,
        "model_text": wire.think(THOUGHT) + text,
        "action": {"kind": kind, "content": content if kind != "image_search" else "", "reason": None},
        "observation": observation,
        "generation_s": round(rng.uniform(0.2, 1.5), 3),
        "completion_tokens": rng.randint(40, 300),
    }


def make_trajectory(number: int, step: int, tool_probability: float, rng: random.Random) -> dict[str, Any]:
    """One schema-valid RL trajectory of a random category (``metadata.required_tools`` set)."""
    category = rng.choice(list(CATEGORIES))
    needed, templates = CATEGORIES[category]
    turns: list[dict[str, Any]] = []
    counts = {"code": 0, "search": 0, "image_search": 0, "invalid": 0, "failed": 0, "repeated": 0}
    calls = rng.choice((1, 1, 1, 2, 3)) if rng.random() < tool_probability else 0
    for _ in range(calls):
        kind = needed or rng.choice(("code", "search", "image_search"))
        if rng.random() < 0.15:
            kind = rng.choice(("code", "search", "image_search"))
        if rng.random() < 0.04:
            turns.append({"index": len(turns), "model_text": "<tool_call>{broken", "action": {"kind": "invalid", "content": "{broken", "reason": "not JSON"}, "observation": None})
            counts["invalid"] += 1
            continue
        values = {"a": rng.randint(1, 400), "b": rng.randint(1, 400), "c": rng.randint(1, 400)}
        content = rng.choice(templates).format(**values) if kind == "code" else f"query {values['a']} about {category}"
        turn = _turn(len(turns), kind, content, rng)
        counts[kind] += 1
        counts["failed"] += turn["observation"]["status"] == "error"
        counts["repeated"] += turn["observation"]["repeated"]
        turns.append(turn)
    answered = rng.random() < 0.95
    if answered:
        turns.append(_turn(len(turns), "answer", str(rng.randint(0, 99)), rng))
    accuracy = float(rng.random() < (0.6 if calls else 0.4))
    return {
        "schema_version": SCHEMA_VERSION,
        "id": f"p{number // 4}#{number % 4}",
        "question": f"Synthetic {category} question number {number}: what is shown?",
        "images": [f"/data/images/{category}-{number % 997:05d}.png"],
        "ground_truth": "42",
        "data_source": "synthetic_bench",
        "turns": turns,
        "final_answer": turns[-1]["action"]["content"] if answered else None,
        "stop_reason": "answer" if answered else "max_turns",
        "tool_calls": counts,
        "reward": {"score": accuracy + 0.1, "accuracy": accuracy, "format": 1.0, "tool_efficiency": 0.1 * bool(calls), "task_completion": float(answered)},
        "timing": {"total_s": round(rng.uniform(1, 10), 3)},
        "metadata": {"task": category, "step": step, "prompt_uid": f"p{number // 4}", "sample": number % 4, "required_tools": [needed] if needed else []},
    }


def write_rl_folder(folder: Path, n: int, steps: int, seed: int = 0, start_rate: float = 0.9, end_rate: float = 0.1) -> None:
    """``trajectories.jsonl`` with ``n`` trajectories over ``steps`` steps (tool use decaying) and ``metrics.jsonl``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_step = max(1, n // steps)
    with (folder / "trajectories.jsonl").open("w", encoding="utf-8") as trajectories, (folder / "metrics.jsonl").open("w", encoding="utf-8") as metrics:
        for number in range(n):
            step = min(steps, number // per_step + 1)
            rate = start_rate + (end_rate - start_rate) * (step - 1) / max(1, steps - 1)
            trajectories.write(json.dumps(make_trajectory(number, step, rate, rng)) + "\n")
            if (number + 1) % per_step == 0 and step <= steps:
                metrics.write(json.dumps({"step": step, "reward/mean": rate, "tools/calls_per_trajectory": rate * 1.6}) + "\n")


def bench_classifier(count: int = 2000) -> None:
    """The code classifier without its cache: what a run of all-different code costs per call."""
    from deepeyes.analysis.codeops import _classify

    rng = random.Random(1)
    codes = [rng.choice(rng.choice(list(CATEGORIES.values()))[1]).format(a=i, b=i + 1, c=i + 2) + f"\nvariable_{i} = {i}" for i in range(count)]
    started = time.perf_counter()
    for code in codes:
        _classify.__wrapped__(code)
    print(f"code classifier without cache: {1e6 * (time.perf_counter() - started) / count:.0f} µs per code call")


def main() -> None:
    parser = argparse.ArgumentParser(description="Time and measure the behaviour analysis on N synthetic trajectories.")
    parser.add_argument("--n", type=int, default=100_000, help="trajectories (default %(default)s)")
    parser.add_argument("--steps", type=int, default=200, help="RL steps they are spread over (default %(default)s)")
    parser.add_argument("--work_dir", type=Path, default=None, help="keep the data and report here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="analysis-bench-") as temporary:
        work = args.work_dir or Path(temporary)
        run_dir = work / "rl"
        started = time.perf_counter()
        write_rl_folder(run_dir, args.n, args.steps)
        size_mb = (run_dir / "trajectories.jsonl").stat().st_size / 2**20
        print(f"generated {args.n} trajectories ({size_mb:.0f} MiB JSONL) in {time.perf_counter() - started:.1f} s")
        command = [sys.executable, "-m", "deepeyes.analysis", "--runs", f"rl={run_dir}", "--out", str(work / "report"), "--no_progress", "--log_level", "WARNING"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mb = usage.ru_maxrss / 1024  # Linux: KiB
        print(f"analysis (stream, aggregate, figures, HTML, PDF, browser): {elapsed:.1f} s wall for {args.n} trajectories ({args.n / elapsed:.0f} /s); limit 60 s")
        print(f"  of which CPU time of the analysis process: {usage.ru_utime + usage.ru_stime:.1f} s (what an unloaded core would need)")
        print(f"peak resident memory of the analysis process: {peak_mb:.0f} MiB; limit 2048 MiB")
        bench_classifier()
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared; timings inflate with load)")


if __name__ == "__main__":
    main()
