"""Video mini benchmark: held-out moving-shape questions, evaluated the normal way, reported per category.

    .venv/bin/python benchmarks/video_bench.py [--rows 30] [--model PATH | --api_base URL] [--out outputs/video_bench]

A separate, optional evaluation (the quick start neither builds nor runs it):

1. Writes the held-out video benchmark with the generator's Python API
   (``eval/DeepEyesMini_Video.tsv``: A-D questions on direction of motion, frames where a
   shape shows, order of appearance; each clip a folder of PNG frames named by ``video_path``)
   and checks that every row's values lie on the held-out side of the train/held-out partition
   (so the ``--video_rows`` training data never asks them).
2. Evaluates the model through ``bash evaluation/run_eval.sh`` (the agent loop with its
   tools, the shared reward), ``DATASETS=DeepEyesMini_Video``.
3. Prints, from ``eval_results.json``, accuracy with its 95 % interval per category, the
   share of samples calling each tool, and how many trajectories record the video they were
   asked about (a trajectory without one means the clip never reached the model).

Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from deepeyes.data.synth import SynthConfig
from deepeyes.data.synth.sample import is_heldout_value
from deepeyes.data.synth.video_rows import (
    VIDEO_BENCHMARK,
    build_videos,
    plan_videos,
    write_video_data,
)
from deepeyes.utils.stats import format_interval


def build_benchmark(out: Path, rows: int, seed: int) -> dict[str, int]:
    """The benchmark under ``out`` (``eval/`` and ``videos/``); returns its size and the rows off the held-out side."""
    out.mkdir(parents=True, exist_ok=True)
    config = SynthConfig(out=out, seed=seed, eval_video=rows)
    write_video_data(config, out, system_prompt="")
    samples = build_videos(config, plan_videos(config))
    return {"rows": len(samples), "not_held_out": sum(not is_heldout_value(*s.values) for s in samples.values())}


def run_evaluation(args: argparse.Namespace, lmudata: Path, out: Path) -> float:
    """``evaluation/run_eval.sh`` on the benchmark; returns its wall time. Exits on failure with the log's tail."""
    env = {
        "DATASETS": VIDEO_BENCHMARK,
        "LMUDATA": str(lmudata),
        "OUTPUT_REPORT": str(out),
        "OVERWRITE": "1",
        "MAX_SAMPLES": str(args.rows),
        "MAX_TURNS": str(args.max_turns),
        "MAX_NEW_TOKENS": str(args.max_new_tokens),
        "USE_TOOLS": str(args.use_tools),
        **({"MODEL_PATH": args.model} if args.model else {}),
        **({"API_BASE": args.api_base} if args.api_base else {}),
    }
    log = out.parent / "eval.log"
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        code = subprocess.run(
            ["bash", "evaluation/run_eval.sh"], cwd=REPO_ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        raise SystemExit(f"evaluation failed (exit {code}); log {log}:\n{log.read_text(encoding='utf-8', errors='replace')[-3000:]}")
    return time.perf_counter() - started


def videos_recorded(out: Path) -> tuple[int, int]:
    """(trajectories naming at least one video, trajectories) in the run's trajectory file."""
    lines = (out / "trajectories" / f"{VIDEO_BENCHMARK}.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    return sum(bool(record.get("videos")) for record in records), len(records)


def report(results: dict, recorded: tuple[int, int]) -> list[str]:
    dataset = results["datasets"][VIDEO_BENCHMARK]
    tools = sorted(dataset["overall"]["tool_call_rate"])
    widths = {t: len(t) + 2 for t in tools}  # each tool's column as wide as its name
    lines = [
        "tool-call rate per tool, by category:",
        f"{'category':<14}{'n':>4}{'accuracy':>10}  {'95% CI':<16}" + "".join(f"{t:>{widths[t]}}" for t in tools),
    ]
    for name, block in [("all", dataset["overall"]), *dataset["categories"].items()]:
        lines.append(
            f"{name:<14}{block['n']:>4}{100 * block['accuracy']:>9.1f}%  {format_interval(block['accuracy_ci']):<16}"
            + "".join(f"{100 * block['tool_call_rate'][t]:>{widths[t] - 1}.1f}%" for t in tools)
        )
    lines.append(f"trajectories recording their video: {recorded[0]} of {recorded[1]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "video_bench", help="where the benchmark and the run are written")
    parser.add_argument("--rows", type=int, default=30, help="held-out video questions (the three kinds in turn)")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--model", default="", help="MODEL_PATH of run_eval.sh (default: its tiny model)")
    parser.add_argument("--api_base", default="", help="API_BASE of run_eval.sh: an OpenAI-compatible endpoint instead of --model")
    parser.add_argument("--max_turns", type=int, default=3, help="model turns per question")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="tokens per model turn")
    parser.add_argument("--use_tools", choices=("True", "False"), default="True", help="False: one turn, no tools")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be >= 1")

    started = time.perf_counter()
    sizes = build_benchmark(args.out / "data", args.rows, args.seed)
    data_s = time.perf_counter() - started
    eval_s = run_evaluation(args, args.out / "data" / "eval", args.out / "eval")
    results = json.loads((args.out / "eval" / "eval_results.json").read_text(encoding="utf-8"))

    print(f"benchmark: {sizes['rows']} rows ({data_s:.1f} s), rows off the held-out side: {sizes['not_held_out']}")
    print(f"evaluation: {eval_s:.0f} s ({os.cpu_count()} visible cores), model {args.api_base or args.model or 'run_eval.sh default'}")
    print()
    print("\n".join(report(results, videos_recorded(args.out / "eval"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
