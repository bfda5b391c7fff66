"""RL benchmark: the default run's per-step time split, and a longer run's reward curve.

1. Runs ``train.py`` with the default config (as a user would) and prints its wall time and,
   per step, where the time went: generation, tools, reward scoring, the update.
2. Runs a longer local training (``--curve-steps``, 30 by default) that scores a fixed
   held-in batch of training prompts every ``--eval-every`` steps, and prints that batch's
   mean reward along the run (first vs last), next to the training batches' reward.

Figures are printed, not asserted: timings and learning curves belong here, not in tests.
Example: ``python benchmarks/rl_bench.py --set data.rl_data_path=/path/train.parquet``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN = REPO_ROOT / "reinforcement_learning" / "train.py"
DEFAULT_CONFIG = REPO_ROOT / "reinforcement_learning" / "configs" / "deepeyes_rl.yaml"
#: verl's phase names (the local engine logs them as verl's trainer does), and each trajectory's own generation and tool time.
SPLIT = ("timing_s/gen", "timing_s/reward", "timing_s/update_actor", "timing_s/step",
         "timing_s/agent_loop/generate_sequences/mean", "timing_s/agent_loop/tool_calls/mean")  # fmt: skip


def run_train(config: Path, overrides: list[str], log_path: Path) -> float:
    """Run train.py; return its wall time in seconds (startup and shutdown included)."""
    output_dir = next(Path(o.split("=", 1)[1]) for o in overrides if o.startswith("output.dir="))
    if output_dir.exists():  # each benchmark run starts from scratch
        shutil.rmtree(output_dir)
    argv = [sys.executable, str(TRAIN), "--config", str(config), "--no-progress"]
    for override in overrides:
        argv += ["--set", override]
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    if code != 0:
        raise SystemExit(f"train.py failed with exit code {code}; see {log_path}")
    return time.perf_counter() - started


def read_metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def print_time_split(records: list[dict], wall_s: float) -> None:
    steps = [r for r in records if "timing_s/step" in r]
    print(f"\nDefault run: {len(steps)} steps, wall time {wall_s:.1f} s (startup, services and shutdown included)")
    header = "step  " + "  ".join(f"{name.removeprefix('timing_s/').removesuffix('/mean').split('/')[-1]:>18}" for name in SPLIT) + "  reward"
    print(header)
    for record in steps:
        print(f"{record['step']:>4}  " + "  ".join(f"{record[name]:>18.2f}" for name in SPLIT) + f"  {record['critic/score/mean']:+.3f}")
    means = {name: statistics.fmean(r[name] for r in steps) for name in SPLIT}
    print("mean  " + "  ".join(f"{means[name]:>18.2f}" for name in SPLIT))
    step = means["timing_s/step"]
    print(
        "share of a step: rollout {:.0%} (generation and tools), reward {:.0%}, update {:.0%}".format(
            means["timing_s/gen"] / step, means["timing_s/reward"] / step, means["timing_s/update_actor"] / step
        )
    )


def print_curve(records: list[dict]) -> None:
    evals = [r for r in records if "eval/critic/score/mean" in r]
    train = [r for r in records if "critic/score/mean" in r]
    print("\nHeld-in batch (fixed training prompts, own sampling seed): mean reward by step")
    print("step  eval_reward  eval_accuracy  eval_answered  train_reward(that step)")
    train_by_step = {r["step"]: r["critic/score/mean"] for r in train}
    for record in evals:
        train_reward = train_by_step.get(record["step"])
        print(
            f"{record['step']:>4}  {record['eval/critic/score/mean']:>+11.3f}  {record['eval/reward/accuracy']:>13.3f}  "
            f"{record['eval/rollout/answered']:>13.3f}  {'' if train_reward is None else f'{train_reward:+.3f}'}"
        )
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        print(f"held-in mean reward: first (step {first['step']}) {first['eval/critic/score/mean']:+.3f} -> last (step {last['step']}) {last['eval/critic/score/mean']:+.3f}")
    if len(train) >= 10:
        head = statistics.fmean(r["critic/score/mean"] for r in train[:5])
        tail = statistics.fmean(r["critic/score/mean"] for r in train[-5:])
        print(f"training-batch mean reward: first 5 steps {head:+.3f} -> last 5 steps {tail:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="RL benchmark: default run's time split and a longer run's held-in reward curve.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="RL config (default: the default config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override for both runs (repeatable)")
    parser.add_argument("--curve-set", dest="curve_overrides", action="append", default=[], metavar="KEY=VALUE", help="override for the long run only")
    parser.add_argument("--curve-steps", type=int, default=30, help="steps of the long run (0: skip it)")
    parser.add_argument("--eval-every", type=int, default=5, help="held-in evaluation interval of the long run")
    parser.add_argument("--eval-prompts", type=int, default=4, help="prompts in the held-in batch")
    parser.add_argument("--eval-n", type=int, default=4, help="samples per held-in prompt")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "outputs" / "rl_bench", help="where the runs write")
    parser.add_argument("--skip-default", action="store_true", help="only the long run")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)

    if not args.skip_default:
        out = args.output / "default"
        wall = run_train(args.config, [*args.overrides, f"output.dir={out}", "output.save_steps=0"], args.output / "default.log")
        print_time_split(read_metrics(out), wall)

    if args.curve_steps:
        out = args.output / "curve"
        overrides = [
            *args.overrides,
            f"output.dir={out}",
            f"trainer.total_steps={args.curve_steps}",
            f"trainer.eval_steps={args.eval_every}",
            f"trainer.eval_prompts={args.eval_prompts}",
            f"trainer.eval_n={args.eval_n}",
            "output.save_steps=0",
            *args.curve_overrides,
        ]
        wall = run_train(args.config, overrides, args.output / "curve.log")
        records = read_metrics(out)
        print(f"\nLong run: {args.curve_steps} steps in {wall / 60:.1f} min")
        print_curve(records)


if __name__ == "__main__":
    main()
