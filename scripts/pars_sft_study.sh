#!/usr/bin/env bash
# Does the alignment stage earn its place once its kept supervised term sees dropout as in stage 1?
# The alignment epoch runs in eval mode (the sampling and the updated policy must be one function), so
# until now the supervised term (pars_sft_weight 1) trained without dropout, and stage 2 lowered
# validation NDCG@10 in every seed (results/pars-scope-ml-100k). Variants, all from the same stage-1
# model per seed (quick sizes of dataset/ml-100k.yaml), 2 alignment epochs, beam 50 as in that study:
#   sft_dropout  pars_sft_dropout=True (the supervised term in its own encoder pass with dropout on)
#   sft_only     the same, with the policy gradient, KL and reflection terms off: supervised fine-tuning
#                at the alignment learning rate, the control that isolates what GRPO adds
# valid and test NDCG@10 after every epoch; selection on validation only (stage 1 kept on ties).
# Usage:  SEEDS="2020 2021 2022" scripts/pars_sft_study.sh        Output: results/pars-sft-ml-100k/
# A stage-1 checkpoint per seed may be given (STAGE1_2020=saved/...pth): it is reused, not retrained.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-2020 2021 2022}"
OUT="${OUT:-results/pars-sft-ml-100k}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
for seed in $SEEDS; do
  stage1_var="STAGE1_$seed"
  stage1=()
  [ -n "${!stage1_var:-}" ] && stage1=(--stage1 "${!stage1_var}")
  "$PY" reg4rec.py pars-sweep --seed "$seed" --pars_epochs 2 --output "runs/pars-sft/seed$seed" "${stage1[@]}" \
    --set beam_size=50 \
    --variant sft_dropout pars_sft_dropout=True \
    --variant sft_only pars_sft_dropout=True pars_policy_weight=0 pars_kl_weight=0 pars_reflection_weight=0
  cp "runs/pars-sft/seed$seed/pars_sweep.csv" "$OUT/seed$seed.csv"
done
"$PY" reg4rec.py pars-sweep-report "$OUT"/seed*.csv | tee "$OUT/report.md"
