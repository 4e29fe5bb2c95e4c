#!/usr/bin/env bash
# One-call check on a lent GPU machine (see ../.library/device): mixed precision (enable_amp) on
# CUDA for REG4Rec (both stages) and SASRec, their seconds per epoch and evaluation time with and
# without AMP (ml-100k, benchmark profile "timing"), then our test suite on that machine's Python.
#
# Setup (wheels in .whl/, the ray stand-in): scripts/device_env.sh.
# Run (device tool): carry [".whl"], command "bash scripts/gpu_check.sh".
#
# Environment: OUT (results folder, set by the device tool), BENCH_TIMEOUT, TEST_TIMEOUT (seconds),
# GPU_CHECK_PROFILE / GPU_CHECK_FLAGS (local smoke runs, e.g. GPU_CHECK_FLAGS="--epochs=1").
set -uo pipefail
source "$(dirname "$0")/device_env.sh"

AMP="enable_amp=True,enable_scaler=True"
BENCH=/tmp/gpu_check_bench
rm -rf "$BENCH"
timeout "${BENCH_TIMEOUT:-420}" "$PY" reg4rec.py benchmark --dataset=ml-100k --profile="${GPU_CHECK_PROFILE:-timing}" --seeds=1 \
    --models="SASRec,SASRec_amp=SASRec[$AMP],REG4Rec,REG4Rec_amp=REG4Rec[$AMP]" --output="$BENCH" ${GPU_CHECK_FLAGS:-} \
    > "$OUT/benchmark.log" 2>&1
echo "benchmark exit status $?"
cp "$BENCH"/runs.csv "$BENCH"/summary.md "$BENCH"/environment.md "$OUT"/ 2>/dev/null
"$PY" scripts/cells_table.py "$BENCH"

# our tests on this machine's Python / torch (the Ray sweep tests need ray, which is not there)
PARALLEL=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist, where installed
timeout "${TEST_TIMEOUT:-150}" "$PY" -m pytest -q -p no:cacheprovider $PARALLEL --ignore=tests/tuning > "$OUT/pytest.log" 2>&1
echo "pytest exit status $? (124 = stopped by TEST_TIMEOUT)"
tail -n 3 "$OUT/pytest.log"
