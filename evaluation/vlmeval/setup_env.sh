#!/usr/bin/env bash
# Opt-in: create .venv-vlmeval, the environment in which VLMEvalKit runs DeepEyes.
#
# Why a second environment: VLMEvalKit (PyPI `ms-vlmeval`, import `vlmeval`) requires
# omegaconf>=2.4 and antlr4-python3-runtime==4.11.1, while verl's hydra-core needs
# omegaconf 2.3 / antlr4 4.9 (DESIGN §2). They cannot share .venv.
#
# How it stays small: .venv-vlmeval is an *overlay* on .venv. A .pth file appends .venv's
# site-packages to the end of sys.path, so torch, transformers and the deepeyes package
# are reused from .venv (no second 6 GB CUDA stack), while everything pip installs here
# — ms-vlmeval and whatever it needs in a different version (omegaconf 2.4, antlr4 4.11)
# — comes first on sys.path and shadows .venv's copy inside this environment only.
# pip never modifies .venv from here (it refuses to uninstall outside its environment).
#
# Idempotent: a second run with nothing changed only checks a stamp.
#
# Environment:
#   PYTHON                interpreter for the venv (default: the one .venv was made with)
#   VLMEVAL_VERSION       ms-vlmeval version to install (default below)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MAIN_VENV="$ROOT/.venv"
VENV="$ROOT/.venv-vlmeval"
VLMEVAL_VERSION="${VLMEVAL_VERSION:-0.0.20}"

step() { printf '[setup-vlmeval] %-22s %s\n' "$1" "$2"; }

if [ ! -x "$MAIN_VENV/bin/python" ]; then
    echo "[setup-vlmeval] error: $MAIN_VENV is missing; run 'bash setup.sh' first" >&2
    exit 1
fi
PYTHON="${PYTHON:-$(readlink -f "$MAIN_VENV/bin/python")}"
STAMP="$VENV/.deepeyes-vlmeval"
WANT="ms-vlmeval==$VLMEVAL_VERSION $(sha256sum "$0" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
    step "environment" "up to date ($VENV)"
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
MAIN_SITE=$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
OWN_SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Appended after this venv's own site-packages: packages installed here win.
echo "$MAIN_SITE" > "$OWN_SITE/deepeyes_main_venv.pth"
# The editable deepeyes install in .venv is a .pth/finder too; point at the checkout directly.
echo "$ROOT" > "$OWN_SITE/deepeyes_checkout.pth"
step "venv" "$VENV (overlay on $MAIN_VENV)"

"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "ms-vlmeval==$VLMEVAL_VERSION"
step "ms-vlmeval" "installed $VLMEVAL_VERSION"

# Prove the environment works before stamping it: vlmeval, its omegaconf, and deepeyes.
"$VENV/bin/python" - <<'PY'
import omegaconf
import vlmeval.config  # noqa: F401  (imports every model wrapper: catches missing deps)
import deepeyes.agent  # noqa: F401
from deepeyes.evaluation.vlmeval_model import DeepEyesVLM  # noqa: F401
print(f"[setup-vlmeval] check                  vlmeval + deepeyes import (omegaconf {omegaconf.__version__})")
PY
echo "$WANT" > "$STAMP"
step "done" "run: bash evaluation/vlmeval/run_vlmeval.sh --help"
