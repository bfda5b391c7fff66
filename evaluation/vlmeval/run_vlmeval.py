"""VLMEvalKit's own runner (``vlmeval/run.py``) with DeepEyes registered as the model ``DeepEyes``.

    .venv-vlmeval/bin/python evaluation/vlmeval/run_vlmeval.py --model DeepEyes --data VStarBench [run.py flags]

Every flag is VLMEvalKit's (``--data``, ``--mode infer|eval|all``, ``--limit``,
``--work-dir``, ``--reuse``, ``--judge`` …). The DeepEyes model is configured from the
environment: MODEL_PATH, ADAPTER_PATH, API_BASE, SERVED_MODEL, USE_TOOLS,
TOOL_MANAGER_CONFIG, MAX_TURNS, MAX_NEW_TOKENS, TEMPERATURE, DEVICE, TRAJECTORY_FILE.
The class is also reachable from a ``--config`` JSON as ``"class": "DeepEyesVLM"``.
Benchmarks are read from ``$LMUData`` (VLMEvalKit's variable). Runs in ``.venv-vlmeval``
only (see evaluation/vlmeval/setup_env.sh).
"""

from __future__ import annotations

import sys
from functools import partial

import vlmeval.vlm
from vlmeval.config import supported_VLM

from deepeyes.evaluation.vlmeval_model import ENV_SETTINGS, DeepEyesVLM, settings_from_env

MODEL_NAME = "DeepEyes"


def register() -> None:
    """Make ``--model DeepEyes`` and ``"class": "DeepEyesVLM"`` known to VLMEvalKit's runner."""
    supported_VLM[MODEL_NAME] = partial(DeepEyesVLM, **settings_from_env())
    vlmeval.vlm.DeepEyesVLM = DeepEyesVLM


def main() -> None:
    if any(flag in sys.argv[1:] for flag in ("-h", "--help")):
        print(__doc__)
        print(f"DeepEyes settings from the environment: {', '.join(ENV_SETTINGS)}\n\nVLMEvalKit's own flags follow.\n")
    register()
    from vlmeval.run import main as vlmeval_main

    vlmeval_main()


if __name__ == "__main__":
    main()
