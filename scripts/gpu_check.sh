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
"$PY" - "$BENCH" <<'EOF'
"""Seconds per epoch by stage, evaluation time and test NDCG@10 of every finished cell."""
import json, statistics, sys
from pathlib import Path

print(f"{'cell':28s} {'device':7s} {'s/ep st1':>9s} {'s/ep st2':>9s} {'eval s':>7s} {'cuda MB':>8s} {'test N@10':>9s}")
for path in sorted(Path(sys.argv[1], "cells").glob("*.json")):
    cell = json.loads(path.read_text())
    if cell.get("status") != "ok":
        print(f"{cell.get('cell_id', path.stem):28s} FAILED: {str(cell.get('error', ''))[:200]}")
        continue
    times = cell["epoch_times"]
    times = json.loads(times) if isinstance(times, str) else times
    by_stage = {s: [t for _, st, t in times if st == s] for s in (1, 2)}
    # the first epoch carries one-off costs (CUDA context, kernel selection): average the rest
    mean = lambda xs: statistics.mean(xs[1:] if len(xs) > 1 else xs) if xs else float("nan")
    print(f"{cell['cell_id']:28s} {cell['device']:7s} {mean(by_stage[1]):9.2f} {mean(by_stage[2]):9.2f} "
          f"{cell['eval_s']:7.2f} {cell.get('cuda_peak_mb') or 0:8.0f} {cell['test']['ndcg@10']:9.4f}")
EOF

# our tests on this machine's Python / torch (the Ray sweep tests need ray, which is not there)
PARALLEL=$("$PY" -c "import xdist" 2>/dev/null && echo "-n 8")  # pytest-xdist, where installed
timeout "${TEST_TIMEOUT:-150}" "$PY" -m pytest -q -p no:cacheprovider $PARALLEL --ignore=tests/tuning > "$OUT/pytest.log" 2>&1
echo "pytest exit status $? (124 = stopped by TEST_TIMEOUT)"
tail -n 3 "$OUT/pytest.log"
