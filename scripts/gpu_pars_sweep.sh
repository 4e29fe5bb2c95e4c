#!/usr/bin/env bash
# Alignment-stage variants over 3 seeds on a lent GPU machine (see ../.library/device): one
# stage-1 model per seed (benchmark quick-profile sizes, 10 epochs, best on validation), then every
# variant's alignment epochs from it (most important first: a timeout keeps the finished ones)
# (reg4rec.py pars-sweep), the three seeds side by side, and the across-seed table of
# reg4rec.py pars-sweep-report. Selection uses validation only.
#
# Setup: scripts/device_env.sh. Run (device tool): carry [".whl"], command
# "bash scripts/gpu_pars_sweep.sh". Environment: OUT, SWEEP_TIMEOUT (seconds per seed),
# SWEEP_SEEDS, SWEEP_SET (settings of every run added to the sizes, e.g. item_fusion_weight=0),
# SWEEP_ONLY (variant names to run, e.g. "default H0"), SWEEP_FLAGS (extra pars-sweep flags).
set -uo pipefail
source "$(dirname "$0")/device_env.sh"

SIZES="MAX_ITEM_LIST_LENGTH=20 n_layers=1 hidden_size=64 inner_size=128 hidden_dropout_prob=0.2 attn_dropout_prob=0.2 train_batch_size=512 learning_rate=0.001 epochs=10 ${SWEEP_SET:-}"
VARIANTS=(  # name and settings, most important first
    "default"
    "H0 msra_horizon=0"
    "H4 msra_horizon=4"
    "hit_only pars_reward_weights={'hit':1.0,'step':0.0,'reflect':0.0}"
    "lr3e-5 pars_learning_rate=3e-5"
    "G16 pars_group_size=16"
    "sft0 pars_sft_weight=0.0"
    "kl0.2 pars_kl_weight=0.2"
    "gamma1 msra_gamma=1.0"
)
VARIANT_FLAGS=()
for v in "${VARIANTS[@]}"; do
    name=${v%% *}
    if [ -z "${SWEEP_ONLY:-}" ] || [[ " $SWEEP_ONLY " == *" $name "* ]]; then
        read -r -a words <<< "$v"
        VARIANT_FLAGS+=(--variant "${words[@]}")
    fi
done
for seed in ${SWEEP_SEEDS:-2020 2021 2022}; do
    OMP_NUM_THREADS=4 timeout "${SWEEP_TIMEOUT:-420}" "$PY" reg4rec.py pars-sweep --seed "$seed" --pars_epochs 3 \
        --output "/tmp/pars_sweep/seed$seed" --set $SIZES checkpoint_dir="/tmp/pars_sweep/seed$seed/saved" \
        "${VARIANT_FLAGS[@]}" ${SWEEP_FLAGS:-} > "$OUT/sweep_seed$seed.log" 2>&1 &
    sleep 2  # RecBole names checkpoints by the second: separate folders, staggered starts
done
wait
for f in /tmp/pars_sweep/seed*/pars_sweep.csv; do cp "$f" "$OUT/$(basename "$(dirname "$f")").csv"; done
"$PY" reg4rec.py pars-sweep-report /tmp/pars_sweep/seed*/pars_sweep.csv --output "$OUT/summary.md"
