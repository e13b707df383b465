#!/usr/bin/env bash
# Every GPU check and benchmark of the project in one prepared run (~8 minutes on one H100 / H200).
#
#   bash benchmarks/gpu_suite.sh                      # on a machine with a GPU and a CUDA build of torch
#   GFM_SUITE_SMOKE=1 bash benchmarks/gpu_suite.sh    # the same steps, tiny sizes, on the CPU (checks the script)
#
# A GPU machine without ase/vesin/pydantic (the lent device image has torch but not these): run `make gpu-wheels`
# first on a machine with pip access; the suite installs ./.whl/*.whl into /tmp/site when that folder exists.
# Order = importance, so that a run cut short still returns the correctness checks and the fp32/bf16 tables:
#   1. environment   2. tests/test_gpu.py (GPU == CPU physics, screening, bf16 bound, compile, training on GPU)
#   3. screening fp32/bf16 (+ energy-only, ASE loop)   4. MD 1k/8k atoms; scale table, Si and HEA, 1k-100k atoms
#   5. training throughput   6. screening (float32 and bf16) and MD with torch.compile
# Each step runs under `timeout`; steps whose limit would pass the overall deadline (GFM_SUITE_BUDGET seconds,
# default 540) are skipped and say so. Logs and JSON go to $OUT (default ./gpu_suite_out).
set -u
OUT=${OUT:-gpu_suite_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_suite.log"
: >"$LOG"
BUDGET=${GFM_SUITE_BUDGET:-540}
START=$(date +%s)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [ "${GFM_SUITE_SMOKE:-0}" = 1 ]; then
    DEV=cpu; N=16; LOOP=4; SIZES="64"; MDSTEPS=1; TSTEPS=2; TEST_DEV=cpu; COMPILE=0
    SCALE="--systems si --sizes 64 --dtype float32 --calls 1"
else
    DEV=cuda; N=2048; LOOP=256; SIZES="1000 8000"; MDSTEPS=20; TSTEPS=40; TEST_DEV=cuda; COMPILE=${GFM_SUITE_COMPILE:-1}
    SCALE="--systems si hea --sizes 1000 8000 27000 64000 100000 --dtype float32 bfloat16 --calls 3 --max-mem-gb 120"
fi

step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local now=$(($(date +%s) - START))
    if [ $((now + limit)) -gt "$BUDGET" ]; then
        limit=$((BUDGET - now))
        if [ "$limit" -lt 20 ]; then
            echo "## $name: SKIPPED (${now}s of ${BUDGET}s used)" | tee -a "$LOG"
            return
        fi
    fi
    echo "## $name (t=${now}s, limit ${limit}s): $*" | tee -a "$LOG"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "## $name: rc=${PIPESTATUS[0]} after $(($(date +%s) - START - now))s" | tee -a "$LOG"
}

step environment 60 "$PY" -c "
import platform, torch, ase, vesin, pydantic, gfm_ase
print('python', platform.python_version(), 'torch', torch.__version__, 'ase', ase.__version__,
      'vesin', vesin.__version__, 'pydantic', pydantic.VERSION, 'gfm_ase', gfm_ase.__version__)
print('cuda available:', torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"

step gpu-tests 200 env GFM_TEST_DEVICE=$TEST_DEV "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py \
    -o addopts="" --timeout=300

step screening 150 "$PY" -m benchmarks.screening --device $DEV --n $N --loop-n $LOOP --dtype float32 bfloat16 \
    --max-atoms 4096 --energy-only --repeat 2 --in-process --json "$OUT/screening.json"

step md 90 "$PY" -m benchmarks.md --device $DEV --sizes $SIZES --dtype float32 bfloat16 --steps $MDSTEPS

# one process per row (CUDA start-up each): Si and the HEA at 1k-100k atoms, fp32 and bf16, E+F+S
step scale 150 "$PY" -m benchmarks.scale --device $DEV --threads 1 $SCALE --json "$OUT/scale.json"

step training 90 "$PY" -m benchmarks.training --device $DEV --nprocs 1 --precisions float32 bfloat16 \
    --model-size default --batch-size 64 --steps $TSTEPS --json "$OUT/training.json"

if [ "$COMPILE" = 1 ]; then
    step screening-compiled 200 "$PY" -m benchmarks.screening --device $DEV --n $N --loop-n 0 --dtype float32 \
        bfloat16 --max-atoms 4096 --compile --no-eager --repeat 2 --in-process --json "$OUT/screening_compiled.json"
    step md-compiled 120 "$PY" -m benchmarks.md --device $DEV --sizes 8000 --dtype float32 --steps $MDSTEPS --compile
fi
echo "## done after $(($(date +%s) - START))s; log: $LOG" | tee -a "$LOG"
