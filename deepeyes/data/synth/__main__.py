"""Command line: ``python -m deepeyes.data.synth --out data/sample --seed 0``."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from deepeyes.cli import parse_cli
from deepeyes.data.synth.config import SynthConfig
from deepeyes.data.synth.pipeline import generate
from deepeyes.data.synth.sample import SynthError

DESCRIPTION = (
    "Generate the synthetic sample data (images, SFT seed + ShareGPT records with executed tool "
    "trajectories, RL parquet, eval TSVs, text corpus, image-search cache). The same seed and sizes "
    "always give byte-identical files. Files previously generated under --out are replaced."
)


@dataclass(frozen=True)
class SynthRunArguments:
    progress: bool = field(default=True, metadata={"help": "progress bar (--no_progress or --quiet: none)"})


def parse_args(argv: Sequence[str] | None = None) -> tuple[SynthConfig, bool]:
    """The generator settings and whether to show the progress bar; exits 2 on a bad flag or value."""
    config, run = parse_cli(
        [SynthConfig, SynthRunArguments], argv, prog="python -m deepeyes.data.synth", description=DESCRIPTION, aliases={"--quiet": "no:progress"}
    )
    return config, run.progress


def main(argv: Sequence[str] | None = None) -> int:
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
