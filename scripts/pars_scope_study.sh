#!/usr/bin/env bash
# What should the alignment stage (PARS) train? With the inference settings chosen after stage 1 (the
# ID head carries most of the ranking), stage 2 training every parameter lowered validation NDCG@10 in
# 3 of 3 seeds and was never selected. Variant `generator` trains the decoder, codebook heads and
# reflection head only (pars_train_scope=generator), so the encoder and the item table the ID head reads
# keep their stage-1 weights. Per seed: one stage-1 model (quick sizes of dataset/ml-100k.yaml), both
# variants' stage 2 from it, valid and test NDCG@10 after every epoch; selection on validation only.
# Usage:  SEEDS="2020 2021 2022" scripts/pars_scope_study.sh      Output: results/pars-scope-ml-100k/
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-2020 2021 2022}"
OUT="${OUT:-results/pars-scope-ml-100k}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$OUT"
for seed in $SEEDS; do
  "$PY" reg4rec.py pars-sweep --seed "$seed" --pars_epochs 2 --output "runs/pars-scope/seed$seed" \
    --variant all --variant generator pars_train_scope=generator
  cp "runs/pars-scope/seed$seed/pars_sweep.csv" "$OUT/seed$seed.csv"
done
"$PY" reg4rec.py pars-sweep-report "$OUT"/seed*.csv | tee "$OUT/report.md"
