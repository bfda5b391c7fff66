#!/usr/bin/env bash
# Cold-start SFT through LLaMA-Factory: teaches the model the tool-call format before RL.
#
# Converts + validates the SFT data, writes the LLaMA-Factory YAML it runs into
# $OUTPUT_DIR, trains with `llamafactory-cli train`, and optionally merges the LoRA
# adapter with `llamafactory-cli export`. Defaults: the tiny model, the sample SFT data,
# CPU, full fine-tuning (about 5 minutes on a 2-core machine). Every parameter is an environment variable:
#
#   RECIPE                       LLaMA-Factory YAML with the defaults  [cold_start/recipes/tiny_cpu_full.yaml]
#                                (published: qwen2_5_vl_7b_full.yaml, qwen2_5_vl_32b_full.yaml, qwen2_5_vl_7b_lora.yaml)
#   MODEL_NAME_OR_PATH           local model directory or hub id (Qwen/Qwen2.5-VL-7B-Instruct)  [data/models/tiny-qwen2.5-vl-base when set-up installed a pretrained base, else data/models/tiny-qwen2.5-vl; or the recipe's]
#   DATA_PATH                    seed JSONL / ShareGPT JSON / dir of parts / saved HF dataset,
#                                or a hub data set id (honglyhly/DeepEyesV2_SFT)  [data/sample/sft/seed.jsonl]
#   IMAGE_ROOT                   base of relative image paths          [data/sample with the default data, else DATA_PATH's dir,
#                                or where DATA_PATH's zipped images were unpacked]
#   OUTPUT_DIR                   adapter/model, trainer_log.jsonl, YAMLs, sft_data/  [outputs/cold_start]
#   EXPORT_DIR                   if set, merge the LoRA adapter into a full model here
#   STRICT                       true: stop on any data problem instead of excluding the sample  [false]
#   MAX_SEQ_LENGTH BATCH_SIZE LEARNING_RATE NUM_TRAIN_EPOCHS GRADIENT_ACCUMULATION_STEPS
#   USE_PEFT FINETUNING_TYPE LORA_RANK LORA_TARGET FP16 BF16 FREEZE_VISION_TOWER DEEPSPEED
#   MAX_SAMPLES IMAGE_MAX_PIXELS TEMPLATE LOGGING_STEPS SEED USE_CPU
#                                override single recipe keys (unset: the recipe's value)
#   NPROC_PER_NODE NNODES NODE_RANK MASTER_ADDR MASTER_PORT
#                                multi-GPU / multi-node: LLaMA-Factory launches torchrun itself
#
# Arguments: -h/--help prints this text and exits; any other argument is refused (exit 2).
# Relative paths are taken from the current directory (docs/configuration.md).
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
VENV_BIN="$ROOT/.venv/bin"
if [[ ! -x "$VENV_BIN/python" || ! -x "$VENV_BIN/llamafactory-cli" ]]; then
    echo "error: $ROOT/.venv is missing or incomplete: run bash setup.sh" >&2
    exit 1
fi
# LLaMA-Factory's torchrun launch looks torchrun up on PATH.
export PATH="$VENV_BIN:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

RECIPE="${RECIPE:-$ROOT/cold_start/recipes/tiny_cpu_full.yaml}"
if [[ -z "${DATA_PATH:-}" ]]; then
    DATA_PATH="$ROOT/data/sample/sft/seed.jsonl"
    IMAGE_ROOT="${IMAGE_ROOT:-$ROOT/data/sample}"
fi
if [[ -z "${MODEL_NAME_OR_PATH:-}" && "$RECIPE" -ef "$ROOT/cold_start/recipes/tiny_cpu_full.yaml" ]]; then
    export MODEL_NAME_OR_PATH="$ROOT/data/models/tiny-qwen2.5-vl-base"  # the pretrained base when set-up installed one
    [ -f "$MODEL_NAME_OR_PATH/model.safetensors" ] || export MODEL_NAME_OR_PATH="$ROOT/data/models/tiny-qwen2.5-vl"
fi
MODEL_NAME_OR_PATH="${MODEL_NAME_OR_PATH:-$("$VENV_BIN/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1])).get("model_name_or_path") or "")' "$RECIPE")}"

# Hub ids are fetched once into the hub cache (HF_ENDPOINT / HF_HUB_OFFLINE honoured) and
# zipped images unpacked; local paths pass through unchanged. After this, nothing is fetched.
hub_resolve() {  # name, repo type, variable name, [--extract]
    "$VENV_BIN/python" -m deepeyes.hub --name_or_path "$1" --repo_type "$2" --what "$3" ${4:-}
}
if [[ ! -e "$DATA_PATH" ]]; then
    resolved="$(hub_resolve "$DATA_PATH" dataset DATA_PATH --extract)"
    DATA_PATH="$(sed -n 1p <<<"$resolved")"
    IMAGE_ROOT="${IMAGE_ROOT:-$(sed -n 2p <<<"$resolved")}"
fi
if [[ -n "$MODEL_NAME_OR_PATH" && ! -e "$MODEL_NAME_OR_PATH" ]]; then
    MODEL_NAME_OR_PATH="$(hub_resolve "$MODEL_NAME_OR_PATH" model MODEL_NAME_OR_PATH)"
fi
export MODEL_NAME_OR_PATH
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export DISABLE_VERSION_CHECK=1 WANDB_DISABLED=true
OUTPUT_DIR="${OUTPUT_DIR:-$ROOT/outputs/cold_start}"

prepare_args=(--recipe "$RECIPE" --data "$DATA_PATH" --output_dir "$OUTPUT_DIR")
[[ -n "${IMAGE_ROOT:-}" ]] && prepare_args+=(--image_root "$IMAGE_ROOT")
[[ -n "${EXPORT_DIR:-}" ]] && prepare_args+=(--export_dir "$EXPORT_DIR")
[[ "${STRICT:-false}" == "true" ]] && prepare_args+=(--strict)
"$VENV_BIN/python" -m deepeyes.data.sft_prepare "${prepare_args[@]}"

OUTPUT_DIR="$(cd "$OUTPUT_DIR" && pwd)"
TRAIN_YAML="$OUTPUT_DIR/llamafactory_train.yaml"
if [[ "${NPROC_PER_NODE:-1}" -gt 1 || "${NNODES:-1}" -gt 1 ]] || grep -q '^deepspeed:' "$TRAIN_YAML"; then
    export FORCE_TORCHRUN=1  # DeepSpeed and multi-process runs go through LLaMA-Factory's torchrun launch
fi
echo "training: llamafactory-cli train $TRAIN_YAML"
"$VENV_BIN/llamafactory-cli" train "$TRAIN_YAML"

if [[ -n "${EXPORT_DIR:-}" ]]; then
    echo "merging the adapter: llamafactory-cli export $OUTPUT_DIR/llamafactory_export.yaml"
    "$VENV_BIN/llamafactory-cli" export "$OUTPUT_DIR/llamafactory_export.yaml"
fi
echo "cold start finished: $OUTPUT_DIR"
