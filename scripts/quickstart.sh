#!/usr/bin/env bash
# The main job on the tiny default model: set-up (when needed), then the tiny Qwen2.5-VL
# answering a sample question through the full agent loop (real sandbox, real search).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/setup.sh"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
OUT="${OUT:-$ROOT/outputs/quickstart}"
mkdir -p "$OUT"

IMAGE=$("$PY" -c "import json; r = json.loads(open('data/sample/sft/seed.jsonl').readline()); print('data/sample/' + r['image'])")
QUESTION=$("$PY" -c "import json; print(json.loads(open('data/sample/sft/seed.jsonl').readline())['text'])")
echo "[quickstart] tiny model answering: $QUESTION"
"$PY" -m deepeyes.infer --image "$IMAGE" --question "$QUESTION" --max_turns 3 --max_new_tokens 64 \
    --trajectory_out "$OUT/trajectory.jsonl"
echo "[quickstart] trajectory written to $OUT/trajectory.jsonl"
