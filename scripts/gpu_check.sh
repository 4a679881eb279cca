#!/usr/bin/env bash
# One-call GPU check (README "Performance"): on a CUDA machine, in one command and under 8 minutes,
#   1. the CUDA-only tests (pytest -m cuda);
#   2. dic bench --device cuda, snr-decomp N=192 at 768×512: serial and checkerboard coding
#      (ours, and CompressAI's checkerboard codec), the analysis and synthesis alone;
#   3. the training step at batch 16 × 256²: fp32, bf16 autocast, channels_last and the
#      official-style step;
#   4. the same with torch.compile, alone and with every switch (bf16, channels_last, fused Adam,
#      sync-free loss cap) — its own stage, since compiling may be slow;
#   5. encode on CUDA, decode on the CPU, and the other way round: format-3 files (the exact
#      entropy path) must give identical latents (docs/portability.md);
#   6. one table of everything, and gpu_check.json.
# Outputs go to $OUT when set, else results/gpu_check/. Every stage runs under `timeout`
# (override with T_TESTS, T_CODING, T_TRAIN, T_COMPILE, T_CROSS, in seconds); a stage that fails
# or times out is reported and the others still run; the exit code is non-zero if any failed.
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
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $arg (expected --cpu, --dry-run)" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
DIR=${OUT:-results/gpu_check}
T_TESTS=${T_TESTS:-60}
T_CODING=${T_CODING:-90}
T_TRAIN=${T_TRAIN:-80}
T_COMPILE=${T_COMPILE:-160}
T_CROSS=${T_CROSS:-30}

if [ "$MODE" = cuda ]; then
    DEVICE=cuda
    MODEL=(--model snr-decomp --N 192)
    SIZE=(--size 768x512)
    TRAIN=(--train-batch 16 --train-size 256)
    RUNS=(--repeats 3 --warmup 1 --threads 0)
    # CompressAI's serial loop pays a GPU round trip per latent position (tens of seconds here);
    # its CPU figures are in the README. Its checkerboard codec is measured.
    PATHS=(--paths exact,ours,exact-checkerboard,checkerboard,compressai-checkerboard)
else
    DEVICE=cpu
    MODEL=(--model snr-decomp --N 16 --hparam num_layers=1 --hparam num_heads=2 --hparam head_dim=8)
    SIZE=(--size 128x64)
    TRAIN=(--train-batch 1 --train-size 64)
    RUNS=(--repeats 1 --warmup 1 --threads 1)
    PATHS=(--paths exact,ours,exact-checkerboard,checkerboard,compressai-checkerboard)
fi

if [ "$DRY" = 0 ]; then
    mkdir -p "$DIR"
    : > "$DIR/stages.tsv"
    rm -f "$DIR"/{cuda_tests.xml,bench_coding.json,bench_train.json,bench_compile.json,crossdevice.json,crossdevice_back.json}
    if [ "$MODE" = cuda ]; then
        timeout 60 "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
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

stage cuda-tests "$T_TESTS" "$PY" -m pytest -q -m cuda tests -p no:cacheprovider --junitxml="$DIR/cuda_tests.xml"
stage coding "$T_CODING" "$PY" scripts/bench.py "${MODEL[@]}" "${SIZE[@]}" --device "$DEVICE" "${RUNS[@]}" \
    "${PATHS[@]}" --no-train --no-memory --json "$DIR/bench_coding.json"
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
