#!/usr/bin/env bash
# Does stage 2 earn its place on the fused model when its rollouts follow what ranks the items?
# Until now the rollouts sampled the token model alone while the ranking adds the item-ID head's
# prior (item_fusion_weight x log p_ID), so the rewards judged paths the ranking rarely takes.
# Variant, from the same stage-1 model per seed as results/pars-sft-ml-100k (quick sizes of
# dataset/ml-100k.yaml, 2 alignment epochs, beam 50, every other key at its default):
#   steer1   pars_rollout_steering=1 (a token's logit gets 1 x log of the ID head's mass of the items the
#            path keeps with it; w = 1 gave the most groups with mixed hit outcomes, i.e. GRPO signal, on
#            training batches of the seed-2020 stage-1 model: runs/tools/steer_diag.py, w = 0 / 0.5 / 1 / 2 / 4)
#   steer1_generator  the same with pars_train_scope=generator: the encoder and the item table the ID head
#            reads keep their stage-1 weights, so the policy can only add to the ID head's ranking, not move it
#            (the supervised term alone lowers validation in 2 of 3 seeds: results/pars-sft-ml-100k, sft_only)
#   generator  pars_train_scope=generator without steering: the control that isolates the steering within
#            that scope (results/pars-scope-ml-100k ran this scope with the dropout-free supervised term)
# VARIANTS="steer1_generator" runs a subset (default: all three).
# The control (steering 0, the defaults) is the sft_dropout row of results/pars-sft-ml-100k: the same
# stage-1 models, seeds and settings; the unsteered code path did not change since.
# valid and test NDCG@10 after every epoch; selection on validation only (stage 1 kept on ties).
# Usage:  STAGE1_2020=saved/...pth ... SEEDS="2020 2021 2022" scripts/pars_steering_study.sh
# Output: results/pars-steering-ml-100k/
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-2020 2021 2022}"
VARIANTS="${VARIANTS:-steer1 steer1_generator generator}"
VARIANTS_TAG="${VARIANTS// /+}"
OUT="${OUT:-results/pars-steering-ml-100k}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
for seed in $SEEDS; do
  stage1_var="STAGE1_$seed"
  stage1=()
  [ -n "${!stage1_var:-}" ] && stage1=(--stage1 "${!stage1_var}")
  args=()
  for variant in $VARIANTS; do
    case "$variant" in
      steer1) args+=(--variant steer1 pars_rollout_steering=1) ;;
      steer1_generator) args+=(--variant steer1_generator pars_rollout_steering=1 pars_train_scope=generator) ;;
      generator) args+=(--variant generator pars_train_scope=generator) ;;
      *) echo "unknown variant $variant (steer1, steer1_generator, generator)" >&2; exit 2 ;;
    esac
  done
  "$PY" reg4rec.py pars-sweep --seed "$seed" --pars_epochs 2 --output "runs/pars-steering/$VARIANTS_TAG/seed$seed" "${stage1[@]}" \
    --set beam_size=50 "${args[@]}"
  # one csv per seed: the stage-1 row once, then every variant's epochs (a later run adds its variants)
  csv="$OUT/seed$seed.csv"
  if [ -f "$csv" ]; then tail -n +3 "runs/pars-steering/$VARIANTS_TAG/seed$seed/pars_sweep.csv" >> "$csv"
  else cp "runs/pars-steering/$VARIANTS_TAG/seed$seed/pars_sweep.csv" "$csv"; fi
done
"$PY" reg4rec.py pars-sweep-report "$OUT"/seed*.csv | tee "$OUT/report.md"
