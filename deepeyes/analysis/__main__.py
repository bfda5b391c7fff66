"""``python -m deepeyes.analysis --runs base=... rl=... --out outputs/behavior``."""

import sys

from deepeyes.analysis.cli import main

sys.exit(main())
