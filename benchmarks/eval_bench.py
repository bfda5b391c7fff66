"""Evaluation-harness figures: its own overhead, its scaling with BATCH_SIZE, report cost.

    .venv/bin/python benchmarks/eval_bench.py --lmudata data/sample/eval

1. Dataset loading: rows per second to read, decode-check and type the mini benchmarks.
2. Harness overhead per sample with a zero-latency scripted policy, no tools: prompt
   building, the agent loop, reward scoring and the JSONL write — everything but the model.
3. Scaling: a policy taking ``--latency`` seconds per turn that serves several requests at
   once (as an inference server does), at BATCH_SIZE 1, 4 and 16 → samples per second.
4. Report: seconds to draw eval_report.html + eval_report.pdf.
5. With ``--tiny``: the default ``run_eval.sh`` workload on the tiny model, end to end.

Figures depend on the machine and its load; record them with the machine they came from.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from deepeyes.evaluation.config import DEFAULT_DATASETS, EvalConfig
from deepeyes.evaluation.datasets import load_dataset
from deepeyes.evaluation.runner import RESULTS_FILE, TRAJECTORY_DIR, evaluate
from deepeyes.paths import SAMPLE_DIR
from deepeyes.policies.scripted import ScriptedPolicy


def _config(lmudata: str, out: Path, **overrides) -> EvalConfig:
    base = {"lmudata": lmudata, "output_dir": str(out), "use_tools": False, "show_progress": False, "report": False}
    return EvalConfig(**{**base, **overrides})


def bench_loading(lmudata: str) -> None:
    started = time.perf_counter()
    rows = sum(len(load_dataset(name, lmudata)) for name in DEFAULT_DATASETS)
    elapsed = time.perf_counter() - started
    print(f"dataset loading      {rows} rows in {elapsed:.2f} s  ({rows / elapsed:.0f} rows/s)")


def bench_overhead(lmudata: str, workdir: Path) -> None:
    policy = ScriptedPolicy(["<think>guess</think><answer>3</answer>"])
    started = time.perf_counter()
    results = evaluate(_config(lmudata, workdir / "overhead", batch_size=1), policy=policy)
    elapsed = time.perf_counter() - started
    n = results["overall"]["n"]
    print(f"harness overhead     {1000 * elapsed / n:.1f} ms/sample over {n} samples (zero-latency policy, BATCH_SIZE=1)")


def bench_scaling(lmudata: str, workdir: Path, latency: float, samples: int) -> None:
    policy = ScriptedPolicy(["<answer>3</answer>"], latency_s=latency)  # sleeps: concurrent calls overlap
    for batch_size in (1, 4, 16):
        config = _config(lmudata, workdir / f"batch{batch_size}", batch_size=batch_size, max_samples=samples)
        started = time.perf_counter()
        results = evaluate(config, policy=policy)
        elapsed = time.perf_counter() - started
        n = results["overall"]["n"]
        print(f"BATCH_SIZE={batch_size:<3}        {n / elapsed:6.1f} samples/s  ({n} samples, {latency * 1000:.0f} ms per generation)")


def bench_report(workdir: Path) -> None:
    from deepeyes.evaluation.report import write_reports

    out = workdir / "overhead"
    results = json.loads((out / RESULTS_FILE).read_text())
    records = {
        name: [json.loads(line) for line in (out / TRAJECTORY_DIR / f"{name}.jsonl").read_text().splitlines()]
        for name in results["datasets"]
    }
    started = time.perf_counter()
    write_reports(results, records, workdir / "report.html", workdir / "report.pdf")
    elapsed = time.perf_counter() - started
    print(f"report               {elapsed:.2f} s for {len(records)} datasets (HTML + PDF)")


def bench_tiny(lmudata: str, workdir: Path) -> None:
    config = _config(lmudata, workdir / "tiny", use_tools=True, max_samples=8, max_turns=3, max_new_tokens=32, report=True)
    started = time.perf_counter()
    results = evaluate(config)
    elapsed = time.perf_counter() - started
    print(f"tiny model default   {elapsed:.1f} s for {results['overall']['n']} samples (run_eval.sh defaults, model load included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmudata", default=str(SAMPLE_DIR / "eval"), help="folder with DeepEyesMini_Visual.tsv and DeepEyesMini_Search.tsv")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated seconds per generation for the scaling run")
    parser.add_argument("--samples", type=int, default=32, help="samples per dataset in the scaling run")
    parser.add_argument("--tiny", action="store_true", help="also time the default run_eval.sh workload on the tiny model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        workdir = Path(tmp)
        bench_loading(args.lmudata)
        bench_overhead(args.lmudata, workdir)
        bench_scaling(args.lmudata, workdir, args.latency, args.samples)
        bench_report(workdir)
        if args.tiny:
            bench_tiny(args.lmudata, workdir)


if __name__ == "__main__":
    main()
