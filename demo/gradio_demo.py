"""DeepEyes Gradio demo: ``python demo/gradio_demo.py [--model_path … | --api_base …] [--port 7860]``.

A thin entry point (works from any directory): the page lives in :mod:`deepeyes.demo.app`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout, when not installed

from deepeyes.demo.app import main

if __name__ == "__main__":
    sys.exit(main())
