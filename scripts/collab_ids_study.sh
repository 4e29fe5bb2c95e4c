#!/usr/bin/env bash
# Collaborative semantic IDs on ml-100k: does REG4Rec's token model get stronger when its tokens are
# quantized from the item embeddings of a trained sequential ID model instead of side information +
# co-occurrence (the default `hybrid` features)? Two passes, the benchmark's protocol and quick sizes:
#   1. SASRec, seed 2020, checkpoint kept (under runs/: not committed);
#   2. REG4Rec variants with `mpq_feature_source=<that checkpoint>` (the same tokens in every seed:
#      features are an input, like side information), stage 1 only, each choosing its own `auto`
#      inference settings on validation; the full model also reports the same weights ranked by its
#      ID head alone and by its token scores alone (`--inference`). Test is only reported.
# Usage:  SEEDS=1 scripts/collab_ids_study.sh [variant ...]   (default: every variant below)
# Outputs: results/collab-ids-ml-100k/<variant>/ (summary.md, runs.csv, cells/, logs/).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-3}"
OUT="${OUT:-results/collab-ids-ml-100k}"
FIRST_PASS="${FIRST_PASS:-runs/collab-ids-sasrec}"
PY="${PYTHON:-.venv/bin/python}"

"$PY" reg4rec.py benchmark --dataset=ml-100k --profile=quick --seeds=1 --show_progress=False --keep_checkpoints \
  --models=SASRec --output="$FIRST_PASS"
CHECKPOINT="$(realpath "$(ls "$FIRST_PASS"/saved/SASRec-*.pth | head -n 1)")"
echo "item features: the item embeddings of $CHECKPOINT"

declare -A VARIANTS=(
  [faithful_sasrec_ids]="item_fusion_weight=0,pars_enabled=False,mpq_feature_source=$CHECKPOINT"
  [full_sasrec_ids]="pars_enabled=False,mpq_feature_source=$CHECKPOINT"
  [tiger_sasrec_ids]="mpq_feature_source=$CHECKPOINT"
)
declare -A MODEL=([faithful_sasrec_ids]=REG4Rec [full_sasrec_ids]=REG4Rec [tiger_sasrec_ids]=TIGER)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(faithful_sasrec_ids full_sasrec_ids tiger_sasrec_ids)
for name in "${names[@]}"; do
  extra=()
  [ "$name" = full_sasrec_ids ] && extra=(--inference='score_mode=id;score_mode=tokens')
  "$PY" reg4rec.py benchmark --dataset=ml-100k --profile=quick --seeds="$SEEDS" --show_progress=False \
    --models="$name=${MODEL[$name]}[${VARIANTS[$name]}]" --output="$OUT/$name" "${extra[@]}"
done
