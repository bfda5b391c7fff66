"""Learning benchmark: does the main job teach the tiny model? (issue 12's targets)

Runs ``bash scripts/quickstart.sh`` (set-up first, untimed), times the job itself, then
prints the per-category table (accuracy, valid-action share, tool-call rate of the base,
SFT and RL models on the held-out split), the targets table and the RL curve's path.
``--out DIR`` with ``--report_only`` prints the tables of an existing quick-start folder.

Figures are printed, not asserted: the machine's load decides the timings.

    python benchmarks/learning_bench.py                     # full run, ~12 min on 2 idle cores
    python benchmarks/learning_bench.py --report_only --out outputs/quickstart
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from deepeyes.rl.learning_report import report

TIME_LIMIT_S = 12 * 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "learning_bench", help="quick-start OUT folder")
    parser.add_argument("--report_only", action="store_true", help="do not run the quick start; report on --out")
    args = parser.parse_args(argv)
    elapsed = None
    if not args.report_only:
        subprocess.run(["bash", str(REPO_ROOT / "setup.sh")], check=True, cwd=REPO_ROOT)
        started = time.perf_counter()
        result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "quickstart.sh")], cwd=REPO_ROOT, env={**os.environ, "OUT": str(args.out)}, check=False)
        elapsed = time.perf_counter() - started  # includes the set-up check (seconds when nothing changed)
        if result.returncode != 0:
            print(f"quickstart failed (exit {result.returncode}) after {elapsed:.0f} s", file=sys.stderr)
            return result.returncode
    text, all_met = report(args.out)
    print(text)
    if elapsed is not None:
        mark = "yes" if elapsed <= TIME_LIMIT_S else "NO"
        print(f"{'quickstart wall time (set-up excluded)':<38}{'<= 12 min':>14}{elapsed / 60:>14.1f} min  {mark}")
        print(f"(measured on {os.cpu_count()} visible cores; shared machines inflate this)")
    print("all measured targets met" if all_met else "some targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
