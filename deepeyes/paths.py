"""Well-known locations inside a checkout, so defaults never depend on the current directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(os.environ.get("DEEPEYES_HOME", Path(__file__).resolve().parent.parent))
DATA_DIR = REPO_ROOT / "data"
SAMPLE_DIR = DATA_DIR / "sample"
TINY_MODEL_DIR = DATA_DIR / "models" / "tiny-qwen2.5-vl"
#: The pretrained tiny base as the repository carries it (weights, processor, manifest).
CARRIED_BASE_DIR = DATA_DIR / "pretrained" / "tiny-qwen2.5-vl-base"
#: Where set-up installs the verified base; the main job's SFT starts from it.
TINY_BASE_DIR = DATA_DIR / "models" / "tiny-qwen2.5-vl-base"
TOOL_MANAGER_CONFIG = REPO_ROOT / "tool_manager_config.yaml"


def resolve_path(path: str | Path) -> Path:
    """``path`` made absolute by the one rule every stage uses: a relative path is taken from the current directory.

    The rule holds wherever the path was written (a flag, an environment variable, a ``--set``
    override, a YAML config); ``~`` is expanded. See docs/configuration.md.
    """
    return Path(path).expanduser().absolute()
