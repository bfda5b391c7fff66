"""Cold-start SFT benchmark: wall time of the default run and the valid-action share it buys.

    .venv/bin/python benchmarks/sft_bench.py [--num_prompts 16] [--out outputs/sft_bench.json]

1. Valid-action share of the tiny model *before* SFT on held-in prompts (expected ≈ 0 %).
2. ``bash cold_start/run_cold_start.sh`` with its defaults (environment variables pass
   through, so ``LEARNING_RATE=… NUM_TRAIN_EPOCHS=…`` benchmark other settings): wall
   time of the whole script (conversion + validation + LLaMA-Factory start-up + training),
   the training time LLaMA-Factory reports, the CPU time the script used, and the logged loss.
   Target: under 3 minutes on a 2-core machine.
3. Valid-action share *after* SFT with the produced model (or adapter) on the same held-in prompts
   (the first turn of trained samples). Target: ≥ 80 %.

Figures are printed, not asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from deepeyes.data.to_llamafactory import load_samples
from deepeyes.evaluation.format_check import check, held_in_prompts
from deepeyes.paths import REPO_ROOT, TINY_MODEL_DIR

SCRIPT = REPO_ROOT / "cold_start" / "run_cold_start.sh"


def valid_share(model: Path, adapter: Path | None, dataset: Path, max_samples: int | None, num_prompts: int, max_new_tokens: int) -> dict:
    from deepeyes.policies.hf import HFPolicy

    with tempfile.TemporaryDirectory() as scratch:
        samples, _ = load_samples([dataset], None, Path(scratch))
        prompts = held_in_prompts(samples[:max_samples], num_prompts)
    policy = HFPolicy(model, adapter_path=adapter, max_new_tokens=max_new_tokens)
    started = time.perf_counter()
    result = check(policy, prompts, batch_size=8)
    return {
        "prompts": result.prompts,
        "valid": result.valid,
        "valid_share": result.valid_share,
        "by_kind": result.by_kind,
        "generation_s": round(time.perf_counter() - started, 1),
        "failures": result.failures[:2],
    }


def run_script(output_dir: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(["bash", str(SCRIPT)], env={**os.environ, "OUTPUT_DIR": str(output_dir)}, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"run_cold_start.sh failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    losses = [json.loads(line)["loss"] for line in (output_dir / "trainer_log.jsonl").read_text().splitlines() if '"loss"' in line]
    train_results = json.loads((output_dir / "train_results.json").read_text())
    return {
        "script_wall_s": round(wall, 1),
        "script_cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
        "train_runtime_s": round(float(train_results["train_runtime"]), 1),
        "logged_losses": len(losses),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Time the default cold-start run and measure the valid-action share before and after it.")
    parser.add_argument("--num_prompts", type=int, default=16, help="held-in prompts per format check; default: %(default)s")
    parser.add_argument("--max_new_tokens", type=int, default=768, help="generation budget per reply; default: %(default)s")
    parser.add_argument("--output_dir", type=Path, default=REPO_ROOT / "outputs" / "sft_bench", help="where the run writes; default: %(default)s")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    model = Path(os.environ.get("MODEL_NAME_OR_PATH", TINY_MODEL_DIR))

    run = run_script(args.output_dir)
    train_config = yaml.safe_load((args.output_dir / "llamafactory_train.yaml").read_text())
    dataset = Path(train_config["dataset_dir"]) / f"{train_config['dataset']}.json"
    max_samples = train_config.get("max_samples")
    before = valid_share(model, None, dataset, max_samples, args.num_prompts, args.max_new_tokens)
    if (args.output_dir / "adapter_config.json").is_file():  # LoRA: the adapter on the base model
        after = valid_share(model, args.output_dir, dataset, max_samples, args.num_prompts, args.max_new_tokens)
    else:  # full fine-tuning (the tiny default): the output is the model
        after = valid_share(args.output_dir, None, dataset, max_samples, args.num_prompts, args.max_new_tokens)

    figures = {"cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2), "run": run, "before_sft": before, "after_sft": after}
    print(f"run_cold_start.sh: {run['script_wall_s']} s wall ({run['train_runtime_s']} s training, {run['script_cpu_s']} s CPU), "
          f"loss {run['first_loss']:.3f} -> {run['last_loss']:.3f} over {run['logged_losses']} logged steps")
    print(f"valid-action share before SFT: {before['valid']}/{before['prompts']} = {before['valid_share']:.1%}  {before['by_kind']}")
    print(f"valid-action share after SFT:  {after['valid']}/{after['prompts']} = {after['valid_share']:.1%}  {after['by_kind']}")
    print(f"(machine: {figures['cpu_count']} CPUs, 1-minute load average {figures['load_average_1m']})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
