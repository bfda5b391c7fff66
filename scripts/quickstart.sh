#!/usr/bin/env bash
# The main job on the tiny default model, end to end on CPU:
#   set-up (when needed) → cold-start SFT (LLaMA-Factory, full fine-tuning of the tiny model)
#   → RL (local engine, verl algorithms, live tools, reward server)
#   → evaluation of the base, SFT and RL models on the held-out split (value-disjoint from training)
#   → one comparison table, a per-category table (accuracy, valid-action share, tool-call rate),
#     the learning targets (held-out accuracy and tool use per stage), and the RL curve (held-out reward and accuracy per step) as a PNG
#   → the behaviour report (behavior_report.html/.pdf) over the three evaluations and the RL run.
#
# Environment: OUT (default outputs/quickstart), EVAL_SAMPLES per dataset (default 20),
# RL_STEPS (default 8), RL_EVAL_STEPS (held-out curve every N steps, default 2),
# RL_EVAL_PROMPTS (held-out prompts per curve point, default 10). Every stage's own variables
# still apply. A re-run starts afresh: each stage replaces what an earlier quickstart left under OUT.
set -euo pipefail
for arg in "$@"; do
    case "$arg" in
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    esac
done
if [[ $# -gt 0 ]]; then
    echo "error: unknown argument '$1': every setting is an environment variable (see --help)" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/setup.sh"
cd "$ROOT"
# This checkout's code, also where .venv's editable install points at another copy.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="$ROOT/.venv/bin/python"
OUT="${OUT:-$ROOT/outputs/quickstart}"
EVAL_SAMPLES="${EVAL_SAMPLES:-20}"
RL_STEPS="${RL_STEPS:-8}"
RL_EVAL_STEPS="${RL_EVAL_STEPS:-2}"
RL_EVAL_PROMPTS="${RL_EVAL_PROMPTS:-10}"
# The pretrained tiny base when the checkout carries one (setup.sh installs it), else the random tiny model.
BASE_MODEL="$ROOT/data/models/tiny-qwen2.5-vl-base"
[ -f "$BASE_MODEL/model.safetensors" ] || BASE_MODEL="$ROOT/data/models/tiny-qwen2.5-vl"
START=$(date +%s)
stage() { printf '\n[quickstart] %s (%ds elapsed)\n' "$1" "$(( $(date +%s) - START ))"; }

stage "1/5 cold-start SFT through LLaMA-Factory"
MODEL_NAME_OR_PATH="$BASE_MODEL" OUTPUT_DIR="$OUT/cold_start" bash cold_start/run_cold_start.sh  # full fine-tuning: the model is in OUTPUT_DIR

stage "2/5 RL (local engine) from the SFT model"
rm -rf "$OUT/rl"  # an earlier run's RL checkpoints were trained from a different SFT model
"$PY" reinforcement_learning/train.py --config reinforcement_learning/configs/deepeyes_rl.yaml --no_progress \
    --set "model.base_model=$OUT/cold_start" --set model.sft_lora_path=null \
    --set "output.dir=$OUT/rl" --set "trainer.total_steps=$RL_STEPS" --set "output.save_steps=$RL_STEPS" \
    --set "trainer.eval_steps=$RL_EVAL_STEPS" --set "trainer.eval_prompts=$RL_EVAL_PROMPTS" --set trainer.eval_n=1 \
    --set trainer.eval_data_path=data/sample/rl/val.parquet
RL_ADAPTER="$(ls -d "$OUT"/rl/checkpoints/step-* | sort | tail -n 1)/policy"  # the RL LoRA adapter

stage "3/5 evaluation of base, SFT and RL models"
evaluate() {  # name, model, [adapter]
    MODEL_PATH="$2" ADAPTER_PATH="${3:-}" OUTPUT_REPORT="$OUT/eval_$1" OVERWRITE=1 \
        MAX_SAMPLES="$EVAL_SAMPLES" MAX_TURNS=3 MAX_NEW_TOKENS=208 bash evaluation/run_eval.sh
}
evaluate base "$BASE_MODEL"
evaluate sft "$OUT/cold_start"
evaluate rl "$OUT/cold_start" "$RL_ADAPTER"

stage "4/5 comparison"
"$PY" -m deepeyes.evaluation.compare --runs "base=$OUT/eval_base" "sft=$OUT/eval_sft" "rl=$OUT/eval_rl"
echo
"$PY" -m deepeyes.rl.learning_report --out "$OUT"  # per category, the targets, and the RL curve's path

stage "5/5 behaviour analysis (tool use by task, decision paths, over RL steps)"
"$PY" behavior_analysis/analyze.py --runs "base=$OUT/eval_base" "sft=$OUT/eval_sft" "rl=$OUT/eval_rl" "rl_training=$OUT/rl" \
    --out "$OUT/behavior" --no_progress
echo "[quickstart] done in $(( $(date +%s) - START )) s; everything is under $OUT"
