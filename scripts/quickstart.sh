#!/usr/bin/env bash
# The main job on the tiny default model, end to end on CPU:
#   set-up (when needed) → cold-start SFT (LLaMA-Factory, full fine-tuning of the tiny model)
#   → RL (local engine, verl algorithms, live tools, reward server)
#   → evaluation of the base, SFT and RL models on the held-out split (value-disjoint from training);
#     the base and SFT evaluations run alongside RL, which keeps one core busy (torch on one thread)
#   → one comparison table, a per-category table (accuracy, valid-action share, tool-call rate),
#     the learning targets (held-out accuracy and tool use per stage), and the RL curve (held-out reward and accuracy per step) as a PNG;
#     the grounding questions (box answers: Acc@0.5 and mean IoU) are reported beside the learning
#     categories, not counted in the targets
#   → the behaviour report (behavior_report.html/.pdf) over the three evaluations and the RL run,
#     built alongside the comparison
#   → the wall time of every stage (also in OUT/stage_times.tsv; logs of the stages run alongside under OUT/logs).
#
# Environment: OUT (default outputs/quickstart), EVAL_SAMPLES per dataset (default 20; the
# sample data's 10 grounding questions are all evaluated at the default),
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
# The learning categories' benchmarks, and the grounding one when set-up generated it.
EVAL_DATASETS="DeepEyesMini_Visual,DeepEyesMini_Search"
[ -f data/sample/eval/DeepEyesMini_Grounding.tsv ] && EVAL_DATASETS+=",DeepEyesMini_Grounding"
START=$(date +%s)
mkdir -p "$OUT/logs"
TIMES="$OUT/stage_times.tsv"
printf 'stage\tstarted_s\tseconds\n' > "$TIMES"
stage() { printf '\n[quickstart] %s (%ds elapsed)\n' "$1" "$(( $(date +%s) - START ))"; }
timed() {  # label, command...: runs the command and appends its start (since START) and wall time to TIMES
    local label="$1" began
    shift
    began=$(date +%s)
    "$@"
    printf '%s\t%d\t%d\n' "$label" "$(( began - START ))" "$(( $(date +%s) - began ))" >> "$TIMES"
}
BACKGROUND=()  # stages run alongside: stopped with their children if the quick start fails before it waits for them
trap 'for pid in "${BACKGROUND[@]}"; do pkill -TERM -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done; true' EXIT
alongside() {  # log name, command...: starts the command in the background, its output in OUT/logs/<name>.log
    local log="$OUT/logs/$1.log"
    shift
    "$@" > "$log" 2>&1 &
    BACKGROUND+=("$!")
}
wait_alongside() {  # what, log name, pid: waits for a stage run alongside; on failure shows its log's end and stops
    if ! wait "$3"; then
        echo "[quickstart] error: $1 failed; the end of $OUT/logs/$2.log:" >&2
        tail -n 40 "$OUT/logs/$2.log" >&2
        exit 1
    fi
}

evaluate() {  # name, model, [adapter]
    MODEL_PATH="$2" ADAPTER_PATH="${3:-}" OUTPUT_REPORT="$OUT/eval_$1" OVERWRITE=1 DATASETS="$EVAL_DATASETS" \
        MAX_SAMPLES="$EVAL_SAMPLES" MAX_TURNS=3 MAX_NEW_TOKENS=208 bash evaluation/run_eval.sh
}

stage "1/5 cold-start SFT through LLaMA-Factory"
sft() { MODEL_NAME_OR_PATH="$BASE_MODEL" OUTPUT_DIR="$OUT/cold_start" bash cold_start/run_cold_start.sh; }  # full fine-tuning: the model is in OUTPUT_DIR
timed "cold-start SFT" sft

stage "2/5 RL (local engine) from the SFT model; the base and SFT evaluations alongside (log: $OUT/logs/eval_base_sft.log)"
base_and_sft_evaluations() {
    timed "evaluation: base (alongside RL)" evaluate base "$BASE_MODEL"
    timed "evaluation: SFT (alongside RL)" evaluate sft "$OUT/cold_start"
}
alongside eval_base_sft base_and_sft_evaluations
rm -rf "$OUT/rl"  # an earlier run's RL checkpoints were trained from a different SFT model
timed "RL" "$PY" reinforcement_learning/train.py --config reinforcement_learning/configs/deepeyes_rl.yaml --no_progress \
    --set "model.base_model=$OUT/cold_start" --set model.sft_lora_path=null \
    --set "output.dir=$OUT/rl" --set "trainer.total_steps=$RL_STEPS" --set "output.save_steps=$RL_STEPS" \
    --set "trainer.eval_steps=$RL_EVAL_STEPS" --set "trainer.eval_prompts=$RL_EVAL_PROMPTS" --set trainer.eval_n=1 \
    --set trainer.eval_data_path=data/sample/rl/val.parquet
RL_ADAPTER="$(ls -d "$OUT"/rl/checkpoints/step-* | sort | tail -n 1)/policy"  # the RL LoRA adapter

stage "3/5 evaluation of the RL model (then waiting for the base and SFT evaluations)"
timed "evaluation: RL" evaluate rl "$OUT/cold_start" "$RL_ADAPTER"
wait_alongside "the base or SFT evaluation" eval_base_sft "${BACKGROUND[0]}"

stage "4/5 comparison; the behaviour analysis alongside (tool use by task, decision paths, over RL steps; log: $OUT/logs/behavior.log)"
behaviour() {
    timed "behaviour analysis (alongside the comparison)" "$PY" behavior_analysis/analyze.py \
        --runs "base=$OUT/eval_base" "sft=$OUT/eval_sft" "rl=$OUT/eval_rl" "rl_training=$OUT/rl" --out "$OUT/behavior" --no_progress
}
alongside behavior behaviour
timed "comparison" "$PY" -m deepeyes.evaluation.compare --runs "base=$OUT/eval_base" "sft=$OUT/eval_sft" "rl=$OUT/eval_rl"
echo
timed "learning report" "$PY" -m deepeyes.rl.learning_report --out "$OUT"  # per category, the targets, and the RL curve's path

stage "5/5 behaviour analysis"
wait_alongside "the behaviour analysis" behavior "${BACKGROUND[1]}"
cat "$OUT/logs/behavior.log"
BACKGROUND=()  # every stage run alongside has been waited for: nothing left for the exit trap to stop
echo
echo "[quickstart] wall time per stage (stages alongside others overlap; $TIMES):"
awk -F'\t' 'NR > 1 { printf "  %-48s %5d s  (from %d s)\n", $1, $3, $2 }' "$TIMES"
echo "[quickstart] done in $(( $(date +%s) - START )) s; everything is under $OUT"
