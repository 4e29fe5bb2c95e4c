#!/usr/bin/env bash
# Does stage 2 earn its place on the fused model when its rollouts follow what ranks the items?
# Until now the rollouts sampled the token model alone while the ranking adds the item-ID head's
# prior (item_fusion_weight x log p_ID), so the rewards judged paths the ranking rarely takes.
# Variant, from the same stage-1 model per seed as results/pars-sft-ml-100k (quick sizes of
# dataset/ml-100k.yaml, 2 alignment epochs, beam 50, every other key at its default):
#   steer1   pars_rollout_steering=1 (a token's logit gets 1 x log of the ID head's mass of the items the
#            path keeps with it; w = 1 gave the most groups with mixed hit outcomes, i.e. GRPO signal, on
#            training batches of the seed-2020 stage-1 model: runs/tools/steer_diag.py, w = 0 / 0.5 / 1 / 2 / 4)
# The control (steering 0, the defaults) is the sft_dropout row of results/pars-sft-ml-100k: the same
# stage-1 models, seeds and settings; the unsteered code path did not change since.
# valid and test NDCG@10 after every epoch; selection on validation only (stage 1 kept on ties).
# Usage:  STAGE1_2020=saved/...pth ... SEEDS="2020 2021 2022" scripts/pars_steering_study.sh
# Output: results/pars-steering-ml-100k/
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-2020 2021 2022}"
OUT="${OUT:-results/pars-steering-ml-100k}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
for seed in $SEEDS; do
  stage1_var="STAGE1_$seed"
  stage1=()
  [ -n "${!stage1_var:-}" ] && stage1=(--stage1 "${!stage1_var}")
  "$PY" reg4rec.py pars-sweep --seed "$seed" --pars_epochs 2 --output "runs/pars-steering/seed$seed" "${stage1[@]}" \
    --set beam_size=50 \
    --variant steer1 pars_rollout_steering=1
  cp "runs/pars-steering/seed$seed/pars_sweep.csv" "$OUT/seed$seed.csv"
done
"$PY" reg4rec.py pars-sweep-report "$OUT"/seed*.csv | tee "$OUT/report.md"
