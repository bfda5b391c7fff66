#!/usr/bin/env bash
# Evaluate DeepEyes with VLMEvalKit's own runner and official scoring (opt-in environment).
#
#   bash evaluation/vlmeval/run_vlmeval.sh --data VStarBench HRBench4K --mode all
#
# Arguments go to VLMEvalKit's run.py (default: --model DeepEyes --data DeepEyesMini_Visual
# --mode infer --limit 4). Model settings come from the environment: MODEL_PATH (default:
# the tiny model), ADAPTER_PATH, API_BASE, SERVED_MODEL, USE_TOOLS (default true),
# TOOL_MANAGER_CONFIG, MAX_TURNS, MAX_NEW_TOKENS, TEMPERATURE, DEVICE, TRAJECTORY_FILE.
# LMUDATA: folder holding <dataset>.tsv (default data/sample/eval); VLMEvalKit writes the
# decoded images under $LMUDATA/images/. WORK_DIR: VLMEvalKit's output folder
# (default outputs/vlmeval).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$ROOT/.venv-vlmeval/bin/python"
if [ ! -x "$PY" ]; then
    echo "error: $ROOT/.venv-vlmeval is missing; create it with 'bash evaluation/vlmeval/setup_env.sh' (or 'bash setup.sh --with-vlmeval')" >&2
    exit 1
fi
export LMUData="${LMUDATA:-$ROOT/data/sample/eval}"
WORK_DIR="${WORK_DIR:-$ROOT/outputs/vlmeval}"
if [ "$#" -eq 0 ]; then
    set -- --data DeepEyesMini_Visual --mode infer --limit 4
fi
case " $* " in *" --model "*|*" --config "*) ;; *) set -- --model DeepEyes "$@" ;; esac
case " $* " in *" --work-dir "*) ;; *) set -- --work-dir "$WORK_DIR" "$@" ;; esac
cd "$ROOT"
exec "$PY" "$ROOT/evaluation/vlmeval/run_vlmeval.py" "$@"
