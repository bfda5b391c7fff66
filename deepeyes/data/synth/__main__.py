"""Command line: ``python -m deepeyes.data.synth --out data/sample --seed 0``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from deepeyes.data.synth.config import SynthConfig
from deepeyes.data.synth.pipeline import generate
from deepeyes.data.synth.sample import SynthError


def parse_args(argv: list[str] | None = None) -> tuple[SynthConfig, bool]:
    """The generator settings and whether to show the progress bar."""
    defaults = SynthConfig()
    parser = argparse.ArgumentParser(
        prog="python -m deepeyes.data.synth",
        description=(
            "Generate the synthetic sample data (images, SFT seed + ShareGPT records with executed tool "
            "trajectories, RL parquet, eval TSVs, text corpus, image-search cache). The same seed and sizes "
            "always give byte-identical files. Files previously generated under --out are replaced."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=defaults.out, help="output folder")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random choice")
    parser.add_argument("--sft", type=int, default=defaults.sft, help="number of SFT trajectories")
    parser.add_argument("--rl-train", type=int, default=defaults.rl_train, help="rows of rl/train.parquet")
    parser.add_argument("--rl-val", type=int, default=defaults.rl_val, help="rows of rl/val.parquet")
    parser.add_argument("--eval-visual", type=int, default=defaults.eval_visual, help="rows of eval/DeepEyesMini_Visual.tsv")
    parser.add_argument("--eval-search", type=int, default=defaults.eval_search, help="rows of eval/DeepEyesMini_Search.tsv")
    parser.add_argument(
        "--distractor-entities",
        type=int,
        default=defaults.distractor_entities,
        help="fictional entities that no question asks about (each adds 3 corpus documents)",
    )
    parser.add_argument(
        "--eval-choice-share",
        type=float,
        default=defaults.eval_choice_share,
        help="share of DeepEyesMini_Visual rows given A-D options (answer = letter)",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="parallel processes executing SFT code blocks")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    config = SynthConfig(
        out=args.out,
        seed=args.seed,
        sft=args.sft,
        rl_train=args.rl_train,
        rl_val=args.rl_val,
        eval_visual=args.eval_visual,
        eval_search=args.eval_search,
        distractor_entities=args.distractor_entities,
        eval_choice_share=args.eval_choice_share,
        workers=args.workers,
    )
    try:
        config.validate()
    except ValueError as exc:
        parser.error(str(exc))
    return config, not args.quiet


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG
    config, show_progress = parse_args(argv)
    started = time.perf_counter()
    try:
        manifest = generate(config, show_progress=show_progress)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(manifest['files'])} files to {config.out} in {time.perf_counter() - started:.1f} s (seed {config.seed})")
    for split, counts in manifest["counts"].items():
        detail = ", ".join(f"{task} {n}" for task, n in sorted(counts.items()))
        print(f"  {split:<12} {sum(counts.values()):>4}  ({detail})")
    print(f"  corpus       {manifest['corpus_documents']:>4}  documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
