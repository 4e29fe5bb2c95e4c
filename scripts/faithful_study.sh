#!/usr/bin/env bash
# Paper-faithful REG4Rec (item_fusion_weight 0: no ID head, token scores only), stage 1, ml-100k,
# quick profile: what limits it? One variant per benchmark call (they can run side by side),
# all with the same sizes and budget; each cell chooses its own auto inference settings (reflection
# weight, L) on validation; test is only reported. Usage:
#   SEEDS=1 scripts/faithful_study.sh [variant ...]      (default: every variant below)
# Outputs: results/faithful-study-ml-100k/<variant>/ (summary.md, runs.csv, cells/, logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-3}"
OUT="${OUT:-results/faithful-study-ml-100k}"
PY="${PYTHON:-.venv/bin/python}"
declare -A VARIANTS=(
  [faithful]="item_fusion_weight=0,pars_enabled=False"
  [faithful_collab]="item_fusion_weight=0,pars_enabled=False,mpq_feature_source=collaborative"
  [faithful_D128]="item_fusion_weight=0,pars_enabled=False,codebook_size=128"
  [faithful_D256]="item_fusion_weight=0,pars_enabled=False,codebook_size=256"
  [faithful_M6]="item_fusion_weight=0,pars_enabled=False,n_codebooks=6"
  [faithful_composed]="item_fusion_weight=0,pars_enabled=False,composed_item_loss_weight=1.0"
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(faithful faithful_collab faithful_D128 faithful_D256 faithful_M6 faithful_composed)
for name in "${names[@]}"; do
  "$PY" reg4rec.py benchmark --dataset=ml-100k --profile=quick --seeds="$SEEDS" --show_progress=False \
    --models="$name=REG4Rec[${VARIANTS[$name]}]" --output="$OUT/$name"
done
