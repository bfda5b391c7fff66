"""Learning benchmark: does the main job teach the tiny model?

Runs ``bash scripts/quickstart.sh`` (set-up first, untimed), times the job itself, then
prints the per-category table (accuracy, valid-action share, tool-call rate of the pretrained
base, SFT and RL models on the held-out split; the grounding questions beside them, Acc@0.5
and mean IoU, not counted in the targets), the learning targets, the RL curve's path and
the wall time of each of the quick start's stages (``OUT/stage_times.tsv``).

Then it checks that the figures are not an artefact of one data seed: it generates an
evaluation set with ``--fresh_seed`` (a seed the project never uses: new values, new
fictional entities and landmarks, with their own search corpus and image-search cache) and
evaluates the same SFT and RL models on it; their accuracy on the learning categories must
stay within 10 points of the figures on the default held-out split.

Figures are printed, not asserted: the machine's load decides the timings.

    python benchmarks/learning_bench.py                     # full run, ~12 min on 2 idle cores + fresh-seed check
    python benchmarks/learning_bench.py --report_only --out outputs/quickstart
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from deepeyes.rl.learning_report import category_rows, report

TIME_LIMIT_S = 12 * 60
#: Never used by the project's data, tests or defaults.
FRESH_SEED = 20261207
TOLERANCE_POINTS = 10.0


def fresh_tool_config(data: Path, out: Path) -> Path:
    """The default tool-manager YAML with search pointed at the fresh data's corpus and cache."""
    config = yaml.safe_load((REPO_ROOT / "tool_manager_config.yaml").read_text(encoding="utf-8"))
    search = config.setdefault("search", {})
    search.setdefault("text", {}).setdefault("local", {})["corpus_path"] = str(data / "search" / "corpus.jsonl")
    image = search.setdefault("image", {})
    image.update(
        cache_json=str(data / "image_search" / "cache.json"),
        queries_jsonl=str(data / "image_search" / "queries.jsonl"),
        query_image_root=str(data),
    )
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def overall_accuracy(folder: Path) -> float:
    """Accuracy over the learning categories, the learning table's ``overall`` row (grounding rows not counted)."""
    return category_rows(json.loads((folder / "eval_results.json").read_text(encoding="utf-8")))[-1].accuracy


def stage_times(out: Path) -> str:
    """The quick start's ``stage_times.tsv`` as printed lines; empty when the run wrote none."""
    path = out / "stage_times.tsv"
    if not path.is_file():
        return ""
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    lines = ["Quick start, wall time per stage (stages run alongside others overlap):"]
    lines += [f"  {label:<48}{int(seconds):>6} s  (from {int(started)} s)" for label, started, seconds in rows]
    return "\n".join(lines)


def fresh_seed_check(out: Path, seed: int, samples: str) -> str:
    """Evaluate the quick start's SFT and RL models on an evaluation set made with ``seed``."""
    python = str(REPO_ROOT / ".venv" / "bin" / "python")
    fresh = out / f"fresh_seed_{seed}"
    data = fresh / "data"
    subprocess.run(
        [python, "-m", "deepeyes.data.synth", "--out", str(data), "--seed", str(seed), "--sft", "0", "--rl_train", "0", "--rl_val", "0", "--no_progress"],
        check=True,
        cwd=REPO_ROOT,
    )
    tools = fresh_tool_config(data, fresh / "tool_manager_config.yaml")
    adapters = sorted((out / "rl" / "checkpoints").glob("step-*"))
    models = {"sft": (out / "cold_start", ""), "rl": (out / "cold_start", str(adapters[-1] / "policy") if adapters else "")}
    lines = [f"Same models, evaluation set generated with seed {seed} (within {TOLERANCE_POINTS:.0f} points):"]
    lines.append(f"{'run':<6}{'default split':>15}{f'seed {seed}':>15}{'difference':>13}  ok")
    for run, (model, adapter) in models.items():
        env = {
            **os.environ,
            "MODEL_PATH": str(model),
            "ADAPTER_PATH": adapter,
            "OUTPUT_REPORT": str(fresh / f"eval_{run}"),
            "LMUDATA": str(data / "eval"),
            "TOOL_MANAGER_CONFIG": str(tools),
            "OVERWRITE": "1",
            "MAX_SAMPLES": samples,
            "MAX_TURNS": "3",
            "MAX_NEW_TOKENS": "208",
        }
        subprocess.run(["bash", str(REPO_ROOT / "evaluation" / "run_eval.sh")], check=True, cwd=REPO_ROOT, env=env)
        default, fresh_value = overall_accuracy(out / f"eval_{run}"), overall_accuracy(fresh / f"eval_{run}")
        difference = 100 * (fresh_value - default)
        mark = "yes" if abs(difference) <= TOLERANCE_POINTS else "NO"
        lines.append(f"{run:<6}{100 * default:>14.1f}%{100 * fresh_value:>14.1f}%{difference:>+12.1f}  {mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "learning_bench", help="quick-start OUT folder")
    parser.add_argument("--report_only", action="store_true", help="do not run the quick start; report on --out")
    parser.add_argument("--fresh_seed", type=int, default=FRESH_SEED, help="seed of the second evaluation set (0 skips the check)")
    parser.add_argument("--eval_samples", default=os.environ.get("EVAL_SAMPLES", "20"), help="rows per dataset, as the quick start's EVAL_SAMPLES")
    args = parser.parse_args(argv)
    elapsed = None
    if not args.report_only:
        subprocess.run(["bash", str(REPO_ROOT / "setup.sh")], check=True, cwd=REPO_ROOT)
        started = time.perf_counter()
        env = {**os.environ, "OUT": str(args.out), "EVAL_SAMPLES": args.eval_samples}
        result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "quickstart.sh")], cwd=REPO_ROOT, env=env, check=False)
        elapsed = time.perf_counter() - started  # includes the set-up check (seconds when nothing changed)
        if result.returncode != 0:
            print(f"quickstart failed (exit {result.returncode}) after {elapsed:.0f} s", file=sys.stderr)
            return result.returncode
    text, all_met = report(args.out)
    fresh = fresh_seed_check(args.out, args.fresh_seed, args.eval_samples) if args.fresh_seed else ""
    print(text)
    times = stage_times(args.out)
    if times:
        print()
        print(times)
    if elapsed is not None:
        mark = "yes" if elapsed <= TIME_LIMIT_S else "NO"
        print(f"{'quickstart wall time (set-up excluded)':<38}{'<= 12 min':>14}{elapsed / 60:>14.1f} min  {mark}")
        print(f"(measured on {os.cpu_count()} visible cores; shared machines inflate this)")
    if fresh:
        print()
        print(fresh)
    print("all measured targets met" if all_met else "some targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
