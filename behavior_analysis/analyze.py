"""Behaviour report over named runs (the same as ``python -m deepeyes.analysis``).

    python behavior_analysis/analyze.py --runs base=outputs/quickstart/eval_base \
        sft=outputs/quickstart/eval_sft rl=outputs/quickstart/rl --out outputs/behavior
"""

import sys

from deepeyes.analysis.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python behavior_analysis/analyze.py"))
