"""``python -m deepeyes.demo``: the same command as ``python demo/gradio_demo.py`` (same flags, same page)."""

import sys

from deepeyes.demo.app import main

if __name__ == "__main__":
    sys.exit(main())
