"""The package's layers (DESIGN §1) hold: the import-linter contracts in pyproject.toml are kept.

The contracts say which layer may import which, and that no modules import each other in
a circle; running them here keeps the layering from drifting back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_record_and_grammar_load_no_tool_runtime() -> None:
    code = (
        "import sys, deepeyes.trajectory, deepeyes.wire, deepeyes.prompts.questions;"
        "print(sorted(m for m in sys.modules if m.startswith(('deepeyes.tools', 'deepeyes.search', 'deepeyes.sandbox', 'deepeyes.evaluation'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    assert loaded.strip() == "[]"
