"""A checkout or venv under /tmp (where CI often clones) stays importable behind a kernel's private /tmp.

Each kernel covers /tmp with an empty tmpfs and binds back only the folders it is given;
a forked kernel still imports lazily (numpy submodules, PIL plugins), so every folder the
interpreter imports from must be among them. Found when a fresh clone under /tmp could not
start a single kernel.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

import pytest

from deepeyes.sandbox.pool import _interpreter_paths


def test_every_import_folder_is_bound_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "pkg").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(checkout))
    kept = [Path(p) for p in _interpreter_paths()]
    covered = lambda folder: any(folder == k or k in folder.parents for k in kept)
    assert str(checkout).startswith("/tmp/") and covered(checkout.resolve())
    for folder in (sys.prefix, *site.getsitepackages()):
        assert covered(Path(folder).resolve())
    # nested folders collapse into their outermost one, so each is bound once
    assert not any(a != b and a in b.parents for a in kept for b in kept)
