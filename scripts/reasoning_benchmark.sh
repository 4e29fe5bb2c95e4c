#!/usr/bin/env bash
# REG4Rec rows of the ml-100k quick benchmark with the current code and defaults (auto inference
# settings, epoch chosen on the ID head), beside the controls that isolate each part:
#   * REG4Rec, both stages, and on the same trained models: the ID head alone (score_mode=id), the chosen
#     setting without the ID-prior steering of the beam (woSteering) and with a plain beam (woCORP);
#   * trained one-change ablations: woCRSS (fixed order), woMPQ (product-quantized
#     tokens, CRSS kept), and the paper-faithful model (REG4Rec_faithful: no ID head, D = 256) with its own.
# Every REG4Rec cell is also evaluated at L = 1..4 (--steps: L acts at inference only).
# Cells run one at a time (each in its own process), seed-major per group; rerunning skips finished cells.
# RecBole's baselines (SASRec, GRU4Rec, BERT4Rec) do not run our code: the report copies their cells from
# the 2026-11-26 benchmark (results/ml-100k-quick-2026-11-26/cells). TIGER runs our code (group tiger).
# Usage:  OUT=runs/reasoning-quick scripts/reasoning_benchmark.sh [group ...]
#         (groups: full ablations faithful faithful_ablations tiger baselines report)
#         PROFILE=converged (patience 5, a cap early stopping ends: the study's protocol) runs every model,
#         the baselines included (group baselines), instead of copying the quick profile's baseline cells.
#         JOBS=n runs n cells of a group at a time (give each one core: OMP_NUM_THREADS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="${SEEDS:-3}"
OUT="${OUT:-runs/reasoning-quick}"
PY="${PYTHON:-.venv/bin/python}"
PROFILE="${PROFILE:-quick}"
COMMON=(--dataset=ml-100k --profile="$PROFILE" --seeds="$SEEDS" --show_progress=False --output="$OUT" --steps=1-4
        --jobs="${JOBS:-1}")
CONTROLS='score_mode=id;beam_prior_steering=False;corp_enabled=False'
# the paper-faithful model(s): REG4Rec_faithful, no ID head (item_fusion_weight 0) and D = 256 codewords, so the
# composed item head is trained (auto); FAITHFUL_MODELS may list variants (e.g. ...,faithful_D64=REG4Rec_faithful[codebook_size=64])
FAITHFUL_MODELS="${FAITHFUL_MODELS:-REG4Rec_faithful}"
FAITHFUL_CONTROLS='first_step_weight=0;score_mode=id'
# (stage 1 only, to be read against the faithful models' `[stage 1]` rows: one change each, at a third of the cost;
# the same settings as REG4Rec_faithful, the one removed part apart)
FAITHFUL_ABLATIONS="${FAITHFUL_ABLATIONS:-faithful_D256_woCRSS=REG4Rec_woCRSS[item_fusion_weight=0,codebook_size=256,pars_enabled=False],faithful_D256_woMPQ=REG4Rec_woMPQ[item_fusion_weight=0,codebook_size=256,pars_enabled=False]}"

ALL='REG4Rec,REG4Rec_woCRSS,REG4Rec_woMPQ,TIGER,SASRec,GRU4Rec,BERT4Rec'

groups=("$@")
if [ ${#groups[@]} -eq 0 ]; then
  groups=(full ablations faithful tiger report)
  [ "$PROFILE" != quick ] && groups=(baselines "${groups[@]}")
fi
for group in "${groups[@]}"; do
  case "$group" in
    full) "$PY" reg4rec.py benchmark "${COMMON[@]}" --models=REG4Rec --inference="$CONTROLS" ;;
    ablations) "$PY" reg4rec.py benchmark "${COMMON[@]}" --inference="$CONTROLS" \
        --models='REG4Rec,REG4Rec_woCRSS,REG4Rec_woMPQ' ;;
    # (controls on the same faithful models: the beam without the composed head's score and steering, u = 0;
    # the composed item head alone, no reasoning, score_mode=id)
    faithful) "$PY" reg4rec.py benchmark "${COMMON[@]}" --models="$FAITHFUL_MODELS" \
        --inference="$FAITHFUL_CONTROLS" --steps_models=REG4Rec,REG4Rec_faithful ${FAITHFUL_FLAGS:-} ;;
    # one-change ablations of the paper-faithful model, where the reasoning ranks (no ID head to hand it to)
    faithful_ablations) "$PY" reg4rec.py benchmark "${COMMON[@]}" --inference="$FAITHFUL_CONTROLS" \
        --steps_models=REG4Rec_woCRSS,REG4Rec_woMPQ \
        --models="$FAITHFUL_ABLATIONS" ;;
    tiger) "$PY" reg4rec.py benchmark "${COMMON[@]}" --models=TIGER ;;
    baselines) "$PY" reg4rec.py benchmark "${COMMON[@]}" --models=SASRec,GRU4Rec,BERT4Rec ;;
    # (REG4Rec_woPARS, stage 1 only, is the stage-1 model inside each REG4Rec cell: no separate row)
    report)  # one table: the baselines' cells of the committed benchmark (their code did not change)
      if [ "$PROFILE" = quick ]; then  # other profiles run their own baselines (group baselines)
        for model in SASRec GRU4Rec BERT4Rec; do cp -n results/ml-100k-quick-2026-11-26/cells/"$model"-* "$OUT"/cells/; done
      fi
      # the faithful model has no ID head, so the controls cannot apply to it: its own table (faithful-*)
      faithful_rows="$FAITHFUL_MODELS"
      first_ablation="${FAITHFUL_ABLATIONS%%=*}"
      compgen -G "$OUT/cells/$first_ablation-*" > /dev/null && faithful_rows="$faithful_rows,$FAITHFUL_ABLATIONS"
      "$PY" reg4rec.py benchmark "${COMMON[@]}" --models="$faithful_rows,TIGER,SASRec" \
        --inference="$FAITHFUL_CONTROLS" --steps_models=REG4Rec,REG4Rec_faithful,REG4Rec_woCRSS,REG4Rec_woMPQ --report_only
      for f in summary.md summary.csv paired.csv runs.csv; do mv "$OUT/$f" "$OUT/faithful-$f"; done
      "$PY" reg4rec.py benchmark "${COMMON[@]}" --inference="$CONTROLS" --models="$ALL" --report_only ;;
    *) echo "unknown group $group (full, ablations, faithful, faithful_ablations, tiger, baselines, report)" >&2; exit 2 ;;
  esac
done
