#!/usr/bin/env bash
# One-command, idempotent set-up: venv + pinned stack, redis-server, tiny model, sample data.
# A second run with nothing changed only checks stamps and takes seconds.
#
# Usage: bash setup.sh [--with-vlmeval]
#   --with-vlmeval          also create .venv-vlmeval, the separate VLMEvalKit environment
#                           (its omegaconf>=2.4 breaks verl's hydra-core; see evaluation/README.md)
# Environment:
#   PYTHON                  interpreter used to create .venv (default: python3.11, else python3)
#   DEEPEYES_SKIP_APT=1     never call apt-get (redis-server must then be on PATH)
#   DEEPEYES_WITH_VLMEVAL=1 same as --with-vlmeval
#   -h, --help              print this text and exit (nothing is installed); other arguments are refused (exit 2)
set -euo pipefail
WITH_VLMEVAL="${DEEPEYES_WITH_VLMEVAL:-0}"
for arg in "$@"; do
    case "$arg" in
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        --with-vlmeval|--with_vlmeval) WITH_VLMEVAL=1 ;;
        *) echo "error: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
START=$(date +%s)

step() { printf '[setup] %-28s %s\n' "$1" "$2"; }
hash_files() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# 1. Python virtual environment -------------------------------------------------------
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    echo "[setup] error: Python 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    step "venv" "created $VENV"
else
    step "venv" "present"
fi

# 2. Pinned Python stack ----------------------------------------------------------------
REQ_HASH=$(hash_files requirements/stack.txt requirements/constraints.txt pyproject.toml)
REQ_STAMP="$VENV/.deepeyes-requirements"
if [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$REQ_HASH" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements/stack.txt -c requirements/constraints.txt
    "$VENV/bin/python" -m pip install --quiet --no-deps -e .
    echo "$REQ_HASH" > "$REQ_STAMP"
    step "python packages" "installed (requirements/stack.txt + constraints.txt)"
else
    step "python packages" "up to date"
fi

# 3. redis-server ---------------------------------------------------------------------
if command -v redis-server >/dev/null 2>&1; then
    step "redis-server" "present ($(redis-server --version | awk '{print $3}'))"
elif [ "${DEEPEYES_SKIP_APT:-0}" != "1" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    step "redis-server" "installed with apt"
else
    step "redis-server" "MISSING: run 'sudo apt-get install -y redis-server' (sandbox, cache and tests need it)"
fi

# 3b. chromium (Debian package): the real headless browser the demo's tests drive through Playwright
if command -v chromium >/dev/null 2>&1; then
    step "chromium" "present"
elif [ "${DEEPEYES_SKIP_APT:-0}" != "1" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    step "chromium" "installed with apt"
else
    step "chromium" "MISSING: run 'sudo apt-get install -y chromium' (the demo's browser tests need it)"
fi

# 4. Tiny offline Qwen2.5-VL ------------------------------------------------------------
MODEL_DIR="$ROOT/data/models/tiny-qwen2.5-vl"
MODEL_HASH=$(hash_files deepeyes/models/tiny.py deepeyes/models/tokenizer_corpus.txt \
    deepeyes/models/chat_template.jinja deepeyes/prompts/system_prompt.txt requirements/stack.txt)
if [ "$(cat "$MODEL_DIR/.build-stamp" 2>/dev/null)" != "$MODEL_HASH" ]; then
    "$VENV/bin/python" -m deepeyes.models.tiny --out "$MODEL_DIR" >/dev/null
    echo "$MODEL_HASH" > "$MODEL_DIR/.build-stamp"
    step "tiny model" "built at data/models/tiny-qwen2.5-vl"
else
    step "tiny model" "up to date"
fi

# 4b. The pretrained tiny base, when the repository carries one (the main job's SFT then starts
# from it): checked against its manifest's SHA-256 on every run, copied when it changed.
BASE_STATUS="$("$VENV/bin/python" -m deepeyes.models.base --log_level WARNING)"
step "pretrained base" "$BASE_STATUS"

# 5. Synthetic sample data --------------------------------------------------------------
# Beside the default splits, 10 held-out grounding questions (eval/DeepEyesMini_Grounding.tsv,
# box answers): the quick start reports them beside its learning categories. They draw their
# own random numbers, so every other file is the same as without them.
SAMPLE_DIR="$ROOT/data/sample"
SYNTH_ARGS=(--seed 0 --eval_grounding 10)
DATA_HASH=$( { echo "${SYNTH_ARGS[*]}"; cat $(find deepeyes/data deepeyes/search deepeyes/prompts deepeyes/wire deepeyes/tools -name '*.py' -o -name '*.txt' | sort) deepeyes/evaluation/templates.py; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$SAMPLE_DIR/.build-stamp" 2>/dev/null)" != "$DATA_HASH" ]; then
    # Generated aside (data/cache/, ignored by git) and swapped in at the end: tests reading
    # data/sample meanwhile see a whole set, never a half-written one.
    FRESH_SAMPLE="$ROOT/data/cache/sample.new"
    rm -rf "$FRESH_SAMPLE"
    "$VENV/bin/python" -m deepeyes.data.synth --out "$FRESH_SAMPLE" "${SYNTH_ARGS[@]}" >/dev/null
    echo "$DATA_HASH" > "$FRESH_SAMPLE/.build-stamp"
    rm -rf "$SAMPLE_DIR" && mv "$FRESH_SAMPLE" "$SAMPLE_DIR"
    step "sample data" "generated at data/sample"
else
    step "sample data" "up to date"
fi

# 5b. The sample image-search cache at the seed's documented search_cache_path ------------------
# (reinforcement_learning/search_cache, in the published cache's layout; a downloaded published
# cache there is left alone). Two lines, so that set -e stops on a failure.
SEARCH_CACHE_STATUS="$("$VENV/bin/python" -m deepeyes.search.sample_cache)"
step "sample search cache" "$SEARCH_CACHE_STATUS"

# 6. Optional: VLMEvalKit's own environment ---------------------------------------------------
if [ "$WITH_VLMEVAL" = "1" ]; then
    bash "$ROOT/evaluation/vlmeval/setup_env.sh"
    step "vlmeval environment" "ready at .venv-vlmeval"
fi

step "done" "in $(( $(date +%s) - START )) s"
