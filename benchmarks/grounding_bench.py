"""Grounding benchmark: does the tiny pipeline learn the synthetic grounding category end to end?

    .venv/bin/python benchmarks/grounding_bench.py [--sft 480] [--eval_rows 40] [--out outputs/grounding_bench]

1. Builds the synthetic grounding splits with the generator's Python API (SFT, RL and a
   held-out evaluation TSV, grounding only) and checks that no (target, anchor, relation)
   combination of the held-out rows occurs in SFT or RL.
2. Runs the cold start the documented way, ``bash cold_start/run_cold_start.sh``, on the
   grounding SFT records (``MODEL_NAME_OR_PATH`` the pretrained tiny base, ``DATA_PATH`` the
   grounding seed records, ``MAX_SAMPLES`` = ``--sft``).
3. Evaluates the base and the SFT model on the held-out rows through ``bash
   evaluation/run_eval.sh`` (the agent loop with its code tool, the grounding reward) and
   prints, per model, n, Acc@0.5 and mean IoU with their 95 % intervals as
   ``eval_results.json`` holds them.

Figures are printed, not asserted: what a 2-core machine learns in a few minutes is the
finding, whichever way it comes out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from deepeyes.data import formats
from deepeyes.data.synth import SynthConfig, generate
from deepeyes.data.synth.pipeline import GROUNDING_BENCHMARK
from deepeyes.utils.stats import format_interval

DATASET = GROUNDING_BENCHMARK["eval_grounding"]
BASE_MODEL = REPO_ROOT / "data" / "models" / "tiny-qwen2.5-vl-base"
_EXPRESSION = re.compile(r"the (\w+) (circle|square|triangle) (left of|right of|above|below) the (\w+) (circle|square|triangle)")


def build_data(out: Path, sft: int, rl_train: int, eval_rows: int, seed: int) -> dict[str, int]:
    """Grounding-only SFT, RL and evaluation splits under ``out``; returns the split sizes and the overlap."""
    config = SynthConfig(
        out=out, seed=seed, sft=sft, rl_train=rl_train, rl_val=0, eval_visual=0, eval_search=0, eval_grounding=eval_rows,
        training_mixture={}, grounding_share=1.0, distractor_entities=2, workers=1,
    )
    generate(config, show_progress=False)
    seeds = formats.read_jsonl(out / "sft" / "seed.jsonl")
    rl = formats.read_parquet(out / "rl" / "train.parquet") if rl_train else []
    held_out = formats.read_tsv(out / "eval" / f"{DATASET}.tsv")
    trained = {_EXPRESSION.search(s["text"]).groups() for s in seeds} | {_EXPRESSION.search(r["extra_info"]["question"]).groups() for r in rl}
    evaluated = {_EXPRESSION.search(q).groups() for q in held_out["question"]}
    return {"sft": len(seeds), "rl": len(rl), "eval": len(held_out), "combinations_shared": len(trained & evaluated)}


def _run(command: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``command`` from the repository root, output to ``log``; returns its wall time. Exits on failure."""
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        code = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command)} failed (exit {code}); log {log}:\n{tail}")
    return time.perf_counter() - started


def cold_start(data: Path, out: Path, max_samples: int) -> float:
    env = {
        "MODEL_NAME_OR_PATH": str(BASE_MODEL),
        "DATA_PATH": str(data / "sft" / "seed.jsonl"),
        "IMAGE_ROOT": str(data),
        "OUTPUT_DIR": str(out),
        "MAX_SAMPLES": str(max_samples),
    }
    return _run(["bash", "cold_start/run_cold_start.sh"], env, out.parent / "cold_start.log")


def evaluate(model: Path, data: Path, out: Path, max_new_tokens: int) -> tuple[dict, float]:
    env = {
        "MODEL_PATH": str(model),
        "DATASETS": DATASET,
        "LMUDATA": str(data / "eval"),
        "OUTPUT_REPORT": str(out),
        "OVERWRITE": "1",
        "MAX_TURNS": "3",
        "MAX_NEW_TOKENS": str(max_new_tokens),
    }
    wall = _run(["bash", "evaluation/run_eval.sh"], env, out.parent / f"{out.name}.log")
    results = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))
    return results["datasets"][DATASET], wall


def _row(name: str, dataset: dict) -> str:
    grounding = dataset["grounding"]
    low, high = grounding["mean_iou_ci"]
    return (
        f"{name:<6}{grounding['n']:>5}{100 * grounding['acc@0.5']:>9.1f}%  {format_interval(grounding['acc@0.5_ci']):<16}"
        f"{grounding['mean_iou']:>9.3f}  {f'[{low:.3f}, {high:.3f}]':<16}"
        f"{100 * dataset['overall']['tool_call_rate']['code']:>10.1f}%{100 * (dataset['overall']['valid_action_share'] or 0):>10.1f}%"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "grounding_bench", help="where everything is written")
    parser.add_argument("--sft", type=int, default=480, help="grounding SFT records (all trained once)")
    parser.add_argument("--rl_train", type=int, default=40, help="grounding RL rows (built and checked for disjointness, not trained on)")
    parser.add_argument("--eval_rows", type=int, default=40, help="held-out grounding rows evaluated per model")
    parser.add_argument("--max_new_tokens", type=int, default=512, help="tokens per model turn at evaluation (the recorded code is ~300)")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"

    started = time.perf_counter()
    sizes = build_data(data, args.sft, args.rl_train, args.eval_rows, args.seed)
    data_s = time.perf_counter() - started
    sft_s = cold_start(data, args.out / "cold_start", args.sft)
    base, base_s = evaluate(BASE_MODEL, data, args.out / "eval_base", args.max_new_tokens)
    sft, sft_s_eval = evaluate(args.out / "cold_start", data, args.out / "eval_sft", args.max_new_tokens)

    print(f"data: {sizes['sft']} SFT records, {sizes['rl']} RL rows, {sizes['eval']} held-out rows ({data_s:.0f} s); "
          f"(target, anchor, relation) combinations shared by training and held-out rows: {sizes['combinations_shared']}")
    print(f"cold start: {sft_s:.0f} s; evaluation: base {base_s:.0f} s, SFT {sft_s_eval:.0f} s ({os.cpu_count()} visible cores)")
    print()
    print(f"held-out {DATASET} (IoU in original-image pixels; 95 % intervals: Wilson for Acc@0.5, bootstrap for mean IoU)")
    print(f"{'model':<6}{'n':>5}{'Acc@0.5':>10}  {'95% CI':<16}{'mean IoU':>9}  {'95% CI':<16}{'code call':>11}{'valid act.':>11}")
    print(_row("base", base))
    print(_row("SFT", sft))
    return 0


if __name__ == "__main__":
    sys.exit(main())
