#!/usr/bin/env bash
# One-call GPU check (README "Performance"): on a CUDA machine, in one command and under 8 minutes,
#   0. deps: when `import compressai` (or pytorch_msssim, imagesize, pytest) fails, the wheels of
#      wheels/ (scripts/fetch_gpu_wheels.py, run beforehand on a machine with PyPI) are installed
#      into a temporary folder put on PYTHONPATH — never into the environment, no other torch;
#      the project always runs from its source tree (codes/ on PYTHONPATH, no pip install -e .);
#   1. the CUDA-only tests (pytest -m cuda);
#   2. dic bench --device cuda, snr-decomp N=192 at 768×512: serial and checkerboard coding
#      (ours, and CompressAI's checkerboard codec), the analysis and synthesis alone, the roofline;
#   2b. precision: the exact serial path with the transforms in float32, bfloat16 and float16
#      (docs/precision.md), with their roofline;
#   3. the training step at batch 16 × 256²: fp32, bf16 autocast, channels_last and the
#      official-style step;
#   4. the same with torch.compile, alone and with every switch (bf16, channels_last, fused Adam,
#      sync-free loss cap) — its own stage, since compiling may be slow;
#   5. encode on CUDA, decode on the CPU, and the other way round: format-3 files (the exact
#      entropy path) must give identical latents (docs/portability.md);
#   6. one table of everything, and gpu_check.json.
# Outputs go to $OUT when set, else results/gpu_check/. Every stage runs under `timeout`
# (override with T_DEPS, T_TESTS, T_CODING, T_PRECISION, T_TRAIN, T_COMPILE, T_CROSS, in seconds;
# their defaults add up to 450 s); a stage that fails or times out is reported and the others
# still run; the exit code is non-zero if any failed. WHEELS: the wheels' folder (wheels/).
#
#   bash scripts/gpu_check.sh            # on a CUDA machine
#   bash scripts/gpu_check.sh --cpu      # the same stages at tiny sizes on the CPU (a test runs this)
#   bash scripts/gpu_check.sh --dry-run  # print the stages' commands, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=cuda
DRY=0
for arg in "$@"; do
    case "$arg" in
        --cpu) MODE=cpu ;;
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $arg (expected --cpu, --dry-run)" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
DIR=${OUT:-results/gpu_check}
WHEELS=${WHEELS:-wheels}
# The CUDA plan's limits (450 s in all); --cpu, a test on a small shared machine where start-up
# dominates, gives every stage 120 s unless told otherwise.
[ "$MODE" = cpu ] && CPU_LIMIT=120 || CPU_LIMIT=
T_DEPS=${T_DEPS:-${CPU_LIMIT:-30}}
T_TESTS=${T_TESTS:-${CPU_LIMIT:-55}}
T_CODING=${T_CODING:-${CPU_LIMIT:-90}}
T_PRECISION=${T_PRECISION:-${CPU_LIMIT:-50}}
T_TRAIN=${T_TRAIN:-${CPU_LIMIT:-70}}
T_COMPILE=${T_COMPILE:-${CPU_LIMIT:-95}}
T_CROSS=${T_CROSS:-${CPU_LIMIT:-30}}
# The project runs from its source tree, whatever is installed.
export PYTHONPATH="$PWD/codes${PYTHONPATH:+:$PYTHONPATH}"
NEEDED="compressai, compressai.models, pytorch_msssim, imagesize, pytest"

if [ "$MODE" = cuda ]; then
    DEVICE=cuda
    MODEL=(--model snr-decomp --N 192)
    SIZE=(--size 768x512)
    TRAIN=(--train-batch 16 --train-size 256)
    RUNS=(--repeats 3 --warmup 1 --threads 0)
    # CompressAI's serial loop pays a GPU round trip per latent position (tens of seconds here);
    # its CPU figures are in the README. Its checkerboard codec is measured.
    PATHS=(--paths exact,ours,exact-checkerboard,checkerboard,compressai-checkerboard)
    PRECISIONS=(--paths exact,exact-bf16,exact-fp16 --repeats 2 --warmup 1 --threads 0)
    PEAK=()
else
    DEVICE=cpu
    MODEL=(--model snr-decomp --N 16 --hparam num_layers=1 --hparam num_heads=2 --hparam head_dim=8)
    SIZE=(--size 128x64)
    TRAIN=(--train-batch 1 --train-size 64)
    RUNS=(--repeats 1 --warmup 1 --threads 1)
    PATHS=(--paths exact,ours,exact-checkerboard,checkerboard,compressai-checkerboard)
    PRECISIONS=(--paths exact,exact-bf16 --repeats 1 --warmup 1 --threads 1)  # no float16 on the CPU
    PEAK=(--peak-size 256)
fi

# Stage 0's question, asked even in a dry run: does this Python import what the check needs?
DEPS=
if ! timeout 120 "$PY" -c "import $NEEDED" >/dev/null 2>&1; then
    if [ "$DRY" = 1 ]; then
        DEPS='$TMPDIR/dic-gpu-deps.XXXXXX'
    elif ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "gpu_check.sh: $PY cannot import $NEEDED, and $WHEELS/ has no wheels: run" \
             "\`python scripts/fetch_gpu_wheels.py\` on a machine with PyPI and copy $WHEELS/ here" >&2
        exit 2
    else
        DEPS=$(mktemp -d "${TMPDIR:-/tmp}/dic-gpu-deps.XXXXXX")
        trap 'rm -rf "$DEPS"' EXIT
    fi
fi

if [ "$DRY" = 0 ]; then
    mkdir -p "$DIR"
    : > "$DIR/stages.tsv"
    rm -f "$DIR"/{cuda_tests.xml,bench_coding.json,bench_precision.json,bench_train.json,bench_compile.json,crossdevice.json,crossdevice_back.json,gpu_check.json}
    if [ "$MODE" = cuda ]; then
        timeout 120 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
            echo "gpu_check.sh: CUDA is not available to $PY (use --cpu to run the stages on the CPU)" >&2; exit 2; }
    fi
fi

# stage NAME SECONDS COMMAND...: run it under timeout, record (name, exit code, seconds).
stage() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s): $*"
    [ "$DRY" = 1 ] && return 0
    local start rc
    start=$(date +%s)
    set +e
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    set -e
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - start ))" >> "$DIR/stages.tsv"
    [ "$rc" = 0 ] || echo "!! stage $name failed (exit $rc$([ "$rc" = 124 ] && echo ': timed out'))" >&2
}

if [ -n "$DEPS" ]; then
    stage deps "$T_DEPS" "$PY" scripts/fetch_gpu_wheels.py --dest "$WHEELS" --install "$DEPS" --check --python "$PY"
    export PYTHONPATH="$DEPS:$PYTHONPATH"
    if [ "$DRY" = 0 ] && [ "$(tail -n 1 "$DIR/stages.tsv" | cut -f2)" != 0 ]; then
        echo "gpu_check.sh: the dependencies could not be installed; no other stage can run" >&2
        printf '{"stages": [{"stage": "deps", "rc": %s}], "error": "dependencies not installed from %s"}\n' \
            "$(tail -n 1 "$DIR/stages.tsv" | cut -f2)" "$WHEELS" > "$DIR/gpu_check.json"
        exit 1
    fi
else
    echo "-- deps: $PY imports $NEEDED: nothing to install"
fi
stage cuda-tests "$T_TESTS" "$PY" -m pytest -q -m cuda tests -p no:cacheprovider --junitxml="$DIR/cuda_tests.xml"
stage coding "$T_CODING" "$PY" scripts/bench.py "${MODEL[@]}" "${SIZE[@]}" --device "$DEVICE" "${RUNS[@]}" \
    "${PATHS[@]}" "${PEAK[@]}" --no-train --no-memory --json "$DIR/bench_coding.json"
stage precision "$T_PRECISION" "$PY" scripts/bench.py "${MODEL[@]}" "${SIZE[@]}" --device "$DEVICE" \
    --contexts serial "${PRECISIONS[@]}" "${PEAK[@]}" --no-train --no-memory --json "$DIR/bench_precision.json"
stage train "$T_TRAIN" "$PY" scripts/bench.py "${MODEL[@]}" --device "$DEVICE" "${TRAIN[@]}" "${RUNS[@]}" \
    --no-coding --no-memory --train-variants ours,official-style,bf16,channels-last --json "$DIR/bench_train.json"
stage train-compile "$T_COMPILE" "$PY" scripts/bench.py "${MODEL[@]}" --device "$DEVICE" "${TRAIN[@]}" \
    "${RUNS[@]}" --no-coding --no-memory --train-variants compile,fast --json "$DIR/bench_compile.json"
stage cross-device "$T_CROSS" "$PY" -m dic.apps.bench.crossdevice "${MODEL[@]}" "${SIZE[@]}" \
    --encode-device "$DEVICE" --decode-device cpu --json "$DIR/crossdevice.json"
stage cross-device-back "$T_CROSS" "$PY" -m dic.apps.bench.crossdevice "${MODEL[@]}" "${SIZE[@]}" \
    --encode-device cpu --decode-device "$DEVICE" --json "$DIR/crossdevice_back.json"

[ "$DRY" = 1 ] && exit 0
echo
"$PY" -m dic.apps.bench.gpu_summary "$DIR"
