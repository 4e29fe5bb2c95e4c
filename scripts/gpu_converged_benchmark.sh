#!/usr/bin/env bash
# The reasoning study's protocol on a lent GPU machine (see ../.library/device), in one call: profile
# `converged` (quick sizes, patience 5, a 60-epoch cap that early stopping ends), 3 seeds, every model of
# scripts/reasoning_benchmark.sh with the same cell identities (so the cells merge into its output folder):
#   A: REG4Rec, REG4Rec_woCRSS, REG4Rec_woMPQ, with the inference controls on the REG4Rec cells;
#   B: the paper-faithful model, TIGER, SASRec, GRU4Rec, BERT4Rec;
#   C: stage-1 studies of the faithful model's limits (codebook size D = 256, M = 6 codebooks; the variants
#      of scripts/faithful_study.sh).
# The groups run side by side, several cells at a time (--jobs): one cell keeps about one CPU core busy
# (RecBole's data pipeline) and leaves the GPU mostly idle. Every cell reports its own stage-1 model too.
# Finished cells come back as converged.tar.gz (cells/, logs/, configs/, requests/); a timeout keeps them.
# The whole protocol does not fit one session's 15 device minutes: carry the cells finished so far
# (runs/converged-gpu, see below) and each call skips them and goes on.
#
# Measured on the H200 (2026-11-28): 18 cells at once ran each ~5x slower than alone (SASRec 10 s/epoch
# against 1.8; REG4Rec's alignment epoch 80 s against 11 with 3 at once), i.e. no more done per minute than
# 6 at once (SASRec 2.9 s/epoch): keep the jobs of all groups together near 6-8.
#
# Setup (wheels in .whl/, the ray stand-in): scripts/device_env.sh.
# Run (device tool): carry [".whl", "runs/converged-gpu"], command "RUN_GROUPS='A B' bash scripts/gpu_converged_benchmark.sh",
# timeout_s ~ BENCH_TIMEOUT + 60. Then here: tar -xzf converged.tar.gz -C runs/converged-gpu && OUT=runs/converged-gpu
# PROFILE=converged scripts/reasoning_benchmark.sh report   (CPU cells of the same groups land in the same folder)
#
# Environment: OUT (set by the device tool), RUN_GROUPS (default "A B"; C on request), CELLS_FROM (finished cells to
# skip, default runs/converged-gpu), BENCH_TIMEOUT (seconds, default 470), SEEDS (default 3),
# JOBS_A / JOBS_B / JOBS_C (cells at a time per group), BENCH_FLAGS (extra benchmark flags; local smoke runs:
# BENCH_FLAGS="--epochs=1 --pars_epochs=1" SEEDS=1 PYTHON=.venv/bin/python bash scripts/gpu_converged_benchmark.sh).
set -uo pipefail
source "$(dirname "$0")/device_env.sh"

RUN=/tmp/converged
rm -rf "$RUN"
mkdir -p "$RUN"
CELLS_FROM="${CELLS_FROM:-runs/converged-gpu}"
if [ -d "$CELLS_FROM/cells" ]; then  # finished earlier (another session, the CPU): skipped by the harness
    cp -r "$CELLS_FROM/cells" "$RUN/"
    echo "carried $(ls "$RUN/cells" | wc -l) finished cells from $CELLS_FROM"
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # one core per cell: the cells, not their threads, share the machine
CONTROLS='score_mode=id;beam_prior_steering=False;corp_enabled=False'
COMMON=(--dataset=ml-100k --profile=converged --seeds="${SEEDS:-3}" --show_progress=False --output="$RUN" --steps=1-4)
FAITHFUL_STUDY='faithful_D256=REG4Rec[item_fusion_weight=0,pars_enabled=False,codebook_size=256],faithful_M6=REG4Rec[item_fusion_weight=0,pars_enabled=False,n_codebooks=6]'

bench() {  # group name, then benchmark flags
    local name=$1
    shift
    timeout "${BENCH_TIMEOUT:-470}" "$PY" reg4rec.py benchmark "${COMMON[@]}" "$@" ${BENCH_FLAGS:-} > "$OUT/group_$name.log" 2>&1
    echo "group $name: exit status $? (124 = stopped by BENCH_TIMEOUT)"
}
RUN_GROUPS="${RUN_GROUPS:-A B}"
[[ " $RUN_GROUPS " == *" A "* ]] && { bench A --models='REG4Rec,REG4Rec_woCRSS,REG4Rec_woMPQ' --inference="$CONTROLS" --jobs="${JOBS_A:-5}" & sleep 1; }
# (the harnesses write their own reports into one folder: staggered starts)
[[ " $RUN_GROUPS " == *" B "* ]] && { bench B --models='faithful=REG4Rec[item_fusion_weight=0],TIGER,SASRec,GRU4Rec,BERT4Rec' --jobs="${JOBS_B:-3}" & sleep 1; }
[[ " $RUN_GROUPS " == *" C "* ]] && { bench C --models="$FAITHFUL_STUDY" --jobs="${JOBS_C:-2}" & }
wait

tar -czf "$OUT/converged.tar.gz" -C "$RUN" cells logs configs requests benchmark.log environment.json environment.md 2>/dev/null
"$PY" scripts/cells_table.py "$RUN"
grep -h "FAILED\|done in" "$OUT"/group_*.log | tail -n 40
