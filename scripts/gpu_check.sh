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
# CPU_PRELOAD=1 (with --cpu; tests/test_gpu_check.py sets it): Python starts once, imports torch
# and compressai (most of each tiny stage's time), and every stage's command runs in a process
# forked from it — the same commands, limits, exit codes and outputs, without six more imports;
# OpenMP threads wait passively (OMP_WAIT_POLICY=PASSIVE: no spinning on a shared machine).
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
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
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

# CPU_PRELOAD=1: a server that imports once and forks a process per command. The client passes
# its argv, working folder, environment and stdin/stdout/stderr; the forked process runs the
# script (or -m module) as `python` would, and sends back its exit code, which the client exits
# with. A signal to the client (timeout's) kills the forked process.
read -r -d '' PRELOAD_SERVER <<'EOF' || true
import atexit, json, os, runpy, signal, socket, sys, threading, traceback
server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
server.bind(sys.argv[1])
server.listen(16)  # clients queue while the imports run
import numpy, torch, compressai, compressai.zoo, pytest  # noqa: the slow imports, done once
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forked processes reap themselves
while True:
    conn, _ = server.accept()
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if os.fork():
        conn.close()
        for fd in fds:
            os.close(fd)
        continue
    server.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request = json.loads(message)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        conn.send(str(os.getpid()).encode())
    except OSError:  # the client is gone (its stage's limit came first)
        os._exit(1)
    def orphaned():  # the client gone, even killed: so is this process
        conn.recv(1)
        os._exit(137)
    threading.Thread(target=orphaned, daemon=True).start()
    argv, code = request["argv"], 0
    try:
        if argv[0] == "-m":
            sys.argv, sys.path[0] = argv[1:], os.getcwd()
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv, sys.path[0] = argv, os.path.dirname(os.path.abspath(argv[0]))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send(str(code).encode())
    os._exit(code & 0xFF)
EOF
read -r -d '' PRELOAD_CLIENT <<'EOF' || true
import json, os, signal, socket, sys, time
client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
for attempt in range(600):
    try:
        client.connect(sys.argv[1])
        break
    except (FileNotFoundError, ConnectionRefusedError):
        time.sleep(0.1)
else:
    sys.exit("gpu_check.sh: the CPU_PRELOAD server did not start")
request = {"argv": sys.argv[2:], "cwd": os.getcwd(), "env": dict(os.environ)}
socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
pid = int(client.recv(64) or 0)
def stop(signum, frame):
    if pid:
        os.kill(pid, signal.SIGKILL)
    os._exit(128 + signum)
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, stop)
code = client.recv(64)
sys.exit(int(code) if code else 1)  # no code: the forked process died
EOF
PRELOAD_PID=
PRELOAD_SOCK=
start_preload() {
    PRELOAD_SOCK=$(mktemp -u "${TMPDIR:-/tmp}/dic-gpu-check.XXXXXX")
    "$PY" -c "$PRELOAD_SERVER" "$PRELOAD_SOCK" </dev/null >/dev/null 2>&1 &
    PRELOAD_PID=$!
}
stop_preload() {
    [ -z "$PRELOAD_PID" ] || kill "$PRELOAD_PID" 2>/dev/null || true
    [ -z "$PRELOAD_SOCK" ] || rm -f "$PRELOAD_SOCK"
    PRELOAD_PID= PRELOAD_SOCK=
}
# py ARGS...: "$PY" ARGS..., forked from the server when it runs.
py() {
    if [ -n "$PRELOAD_SOCK" ]; then "$PY" -c "$PRELOAD_CLIENT" "$PRELOAD_SOCK" "$@"; else "$PY" "$@"; fi
}
DEPS=
trap 'stop_preload; [ -z "$DEPS" ] || [ "$DRY" = 1 ] || rm -rf "$DEPS"' EXIT
PRELOAD=0
if [ "$MODE" = cpu ] && [ "${CPU_PRELOAD:-0}" = 1 ] && [ "$DRY" = 0 ]; then
    PRELOAD=1
    export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
    start_preload  # now, so that its imports overlap the question's
fi

# Stage 0's question, asked even in a dry run: does this Python import what the check needs?
if ! timeout 120 "$PY" -c "import $NEEDED" >/dev/null 2>&1; then
    if [ "$DRY" = 1 ]; then
        DEPS='$TMPDIR/dic-gpu-deps.XXXXXX'
    elif ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
        echo "gpu_check.sh: $PY cannot import $NEEDED, and $WHEELS/ has no wheels: run" \
             "\`python scripts/fetch_gpu_wheels.py\` on a machine with PyPI and copy $WHEELS/ here" >&2
        exit 2
    else
        DEPS=$(mktemp -d "${TMPDIR:-/tmp}/dic-gpu-deps.XXXXXX")
        stop_preload  # it cannot import them either: it starts again once they are installed
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
    if [ -n "$PRELOAD_SOCK" ] && [ "$1" = "$PY" ]; then  # CPU_PRELOAD: the same command, forked
        shift
        set -- "$PY" -c "$PRELOAD_CLIENT" "$PRELOAD_SOCK" "$@"
    fi
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
if [ "$PRELOAD" = 1 ]; then
    [ -n "$PRELOAD_PID" ] || start_preload
    echo "-- CPU_PRELOAD: every stage forks from one Python (pid $PRELOAD_PID) that imported torch and compressai"
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
py -m dic.apps.bench.gpu_summary "$DIR"
