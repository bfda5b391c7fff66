#!/usr/bin/env bash
# Evaluate a model on benchmark TSVs with the DeepEyes agent loop and reward.
#
#   bash evaluation/run_eval.sh                                   # tiny model, bundled mini benchmarks
#   MODEL_PATH=/models/DeepEyesV2_7B DATASETS=VStarBench,HRBench4K LMUDATA=~/LMUData DEVICE=cuda \
#       bash evaluation/run_eval.sh
#
# Every setting is an environment variable (empty = default):
#   MODEL_PATH           Qwen2.5-VL directory or hub id, e.g. honglyhly/DeepEyesV2_7B_1031
#                        (fetched once into the hub cache)     (default: data/models/tiny-qwen2.5-vl)
#   ADAPTER_PATH         LoRA adapter (directory or hub id) on top of MODEL_PATH (default: none)
#   API_BASE             OpenAI-compatible endpoint instead of MODEL_PATH, e.g. http://127.0.0.1:8000/v1
#   SERVED_MODEL         model name requested from API_BASE    (default: deepeyes)
#   DATASETS             comma-separated names, <name>.tsv under LMUDATA
#                        (default: DeepEyesMini_Visual,DeepEyesMini_Search)
#   LMUDATA              folder holding the TSVs               (default: data/sample/eval)
#   OUTPUT_REPORT        output folder                         (default: outputs/eval)
#   BATCH_SIZE           samples in flight per worker; one local copy generates their turns
#                        together as one batch                 (default: 4)
#   NUM_WORKERS          parallel model copies / API clients   (default: 1)
#   USE_TOOLS            True: agent with tools; False: one turn, no tools (default: True)
#   TOOL_MANAGER_CONFIG  tool manager YAML (default: local Redis + sandbox started on loopback)
#   JUDGE_API_BASE       optional OpenAI-compatible LLM judge for free-text answers; JUDGE_MODEL its name
#   REWARD_CONFIG        RewardConfig YAML                     (default: built-in)
#   MAX_SAMPLES          first N rows per dataset, 0 = all
#   MAX_TURNS            model turns per sample
#   MAX_NEW_TOKENS       tokens per model turn
#   TEMPERATURE, DEVICE  sampling temperature (0), torch device for MODEL_PATH (cpu)
#   SEED                 seed of the random generators before each pass (0)
#   REPEATS              K: run the evaluation K times with seeds SEED..SEED+K-1 and report the
#                        mean and spread of the accuracies (with TEMPERATURE > 0)   (default: 1)
#   CIRCULAR             1: CircularEval, every multiple-choice row once per rotation of its options;
#                        circular_accuracy beside accuracy
#   BASELINE_RUNS        model baselines run beside the evaluation: no_image, no_tools (comma-separated)
#   OVERWRITE            1: discard earlier results in OUTPUT_REPORT instead of resuming
#
# Arguments: -h/--help prints this text; any other argument is a flag of
# `python -m deepeyes.evaluation` (see its --help) and wins over the variables above;
# an unknown flag stops with exit status 2 before anything runs. Relative paths are taken
# from the current directory (docs/configuration.md).
#
# Smoke-test sizing: with the tiny default model (MODEL_PATH and API_BASE unset) the run is
# capped at MAX_SAMPLES=8, MAX_TURNS=3, MAX_NEW_TOKENS=32 so that it finishes on a CPU in a
# few minutes (the tiny model is random and never stops early). With a real model the
# defaults are every row, MAX_TURNS=8, MAX_NEW_TOKENS=2048.
set -euo pipefail
for arg in "$@"; do
    if [[ "$arg" == "-h" || "$arg" == "--help" ]]; then
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
        exit 0
    fi
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
    echo "error: $ROOT/.venv is missing; run 'bash setup.sh' first" >&2
    exit 1
fi
# This checkout's package wins over any other install, from whatever directory the script runs.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ -z "${MODEL_PATH:-}" ] && [ -z "${API_BASE:-}" ]; then
    : "${MAX_SAMPLES:=8}" "${MAX_TURNS:=3}" "${MAX_NEW_TOKENS:=32}"
fi
args=(
    --model_path "${MODEL_PATH:-$ROOT/data/models/tiny-qwen2.5-vl}"
    --datasets "${DATASETS:-DeepEyesMini_Visual,DeepEyesMini_Search}"
    --lmudata "${LMUDATA:-$ROOT/data/sample/eval}"
    --output_dir "${OUTPUT_REPORT:-$ROOT/outputs/eval}"
    --batch_size "${BATCH_SIZE:-4}"
    --num_workers "${NUM_WORKERS:-1}"
    --use_tools "${USE_TOOLS:-True}"
    --max_turns "${MAX_TURNS:-8}"
    --max_new_tokens "${MAX_NEW_TOKENS:-2048}"
    --temperature "${TEMPERATURE:-0}"
    --seed "${SEED:-0}"
    --repeats "${REPEATS:-1}"
    --device "${DEVICE:-cpu}"
    --served_model "${SERVED_MODEL:-deepeyes}"
    --judge_model "${JUDGE_MODEL:-judge}"
)
[ -n "${ADAPTER_PATH:-}" ] && args+=(--adapter_path "$ADAPTER_PATH")
[ -n "${API_BASE:-}" ] && args+=(--api_base "$API_BASE")
[ -n "${TOOL_MANAGER_CONFIG:-}" ] && args+=(--tool_manager_config "$TOOL_MANAGER_CONFIG")
[ -n "${JUDGE_API_BASE:-}" ] && args+=(--judge_api_base "$JUDGE_API_BASE")
[ -n "${REWARD_CONFIG:-}" ] && args+=(--reward_config "$REWARD_CONFIG")
[ "${OVERWRITE:-0}" = "1" ] && args+=(--overwrite)
[ "${CIRCULAR:-0}" = "1" ] && args+=(--circular)
[ -n "${BASELINE_RUNS:-}" ] && args+=(--baseline_runs "$BASELINE_RUNS")
[ -n "${MAX_SAMPLES:-}" ] && [ "${MAX_SAMPLES}" != "0" ] && args+=(--max_samples "$MAX_SAMPLES")

exec "$PY" -m deepeyes.evaluation "${args[@]}" "$@"
