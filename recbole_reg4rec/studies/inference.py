"""Inference settings of trained REG4Rec checkpoints, chosen on validation, test only reported.

Every inference setting (score mode, ID-head weight w, reflection weight, reasoning steps L) acts at
inference only, so one trained model per seed serves the whole study. For each checkpoint:

1. the ``auto`` selection of the trainer (:mod:`recbole_reg4rec.trainer.inference_selection`) runs
   on the validation split with every setting searched;
2. every setting it tried is then evaluated on the test split as well (reported, never chosen);
3. the controls of the same weights: the ID head alone (``score_mode=id``), the previous default
   (``fused``, w = 4, no reflection, L = M) and token scores alone; the inference-only ablations
   at the best searched setting (no prior steering = REG4Rec_woSteering, plain beam =
   REG4Rec_woCORP); plus the share of users whose first CRSS codebook differs from the most
   common one.

    # checkpoints you already have (one per seed)
    python reg4rec.py inference-study --model_files saved/REG4Rec-A.pth --output results/inference-ml-100k
    # or train stage-1 checkpoints first (reg4rec.py benchmark, quick profile, seeds 2020, 2021, ...)
    python reg4rec.py inference-study --seeds 3 --train_output runs/stage1 --output results/inference-ml-100k

Writes ``trials.csv`` (checkpoint, seed, settings, valid/test NDCG@10 and Recall@10, chosen flag),
``summary.md`` (per seed: chosen settings and their test numbers beside the controls; mean ± std
over seeds when there are several) and prints the summary. Not a unit test.
"""

from __future__ import annotations

import csv
import glob
import json
import statistics
import subprocess
import sys
from argparse import Namespace
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
CONTROLS = {
    "ID head alone": {"score_mode": "id"},
    "previous default (fused, w=4)": {"score_mode": "fused", "item_fusion_weight": 4.0, "reflection_weight": 0.0,
                                      "reflection_threshold": 0.0},
    "token scores alone": {"score_mode": "tokens", "reflection_weight": 0.0, "reflection_threshold": 0.0},
}

#: one switch changed at the best searched setting (the ablations REG4Rec_woSteering / REG4Rec_woCORP,
#: which change inference only, measured on the same weights)
ABLATIONS = {
    "best search, no prior steering (woSteering)": {"beam_prior_steering": False},
    "best search, plain beam (woCORP)": {"corp_enabled": False},
}


def train_checkpoints(n_seeds: int, output: Path, profile: str, extra: List[str]) -> List[str]:
    """Stage-1 REG4Rec checkpoints of seeds 2020.. trained by ``reg4rec.py benchmark`` (kept under output/saved)."""
    cmd = [sys.executable, str(REPO / "reg4rec.py"), "benchmark", "--dataset=ml-100k", f"--seeds={n_seeds}",
           f"--profile={profile}", "--models=stage1=REG4Rec[pars_enabled=False]", "--keep_checkpoints",
           f"--output={output}", "--show_progress=False", *extra]
    print("[study] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    files = []
    for cell in sorted((output / "cells").glob("*.json")):
        record = json.loads(cell.read_text())
        if record.get("checkpoint"):
            files.append(record["checkpoint"])
    return files


def _metrics(result) -> Dict[str, float]:
    return {"ndcg@10": float(result["ndcg@10"]), "recall@10": float(result["recall@10"])}


def study_checkpoint(model_file: str, verbose: bool = False) -> List[Dict]:
    from ..quick_start import load_data_and_model
    from ..run import build_trainer
    from ..trainer.inference_selection import select_inference_settings

    quiet = None if verbose else {"state": "WARNING"}  # no config dump unless asked
    config, model, _, _, valid, test = load_data_and_model(model_file, overrides=quiet)
    trainer = build_trainer(config, model)
    metric = config["valid_metric"].lower()
    searched = ("score_mode", "item_fusion_weight", "reflection_weight", "reasoning_steps")
    searched = searched if model.item_head_enabled else searched[2:]

    def validation_score() -> float:
        return float(trainer.evaluate(valid, load_best_model=False, show_progress=False)[metric])

    chosen, trials = select_inference_settings(model, validation_score, searched=searched)
    def test_row(name: str, valid_score: float, chosen_row: bool) -> Dict:
        trainer.last_first_codebook_report = None
        t = _metrics(trainer.evaluate(test, load_best_model=False, show_progress=False))
        report = getattr(trainer, "last_first_codebook_report", None)
        return {"model_file": model_file, "seed": config["seed"], "row": name, **model.inference_settings(),
                "valid_ndcg@10": valid_score, "test_ndcg@10": t["ndcg@10"], "test_recall@10": t["recall@10"],
                "first_codebook_differs": report["share_differs_from_most_common"] if report else float("nan"),
                "chosen": chosen_row}

    rows = []
    for settings, valid_score in trials:  # test numbers: reported for every setting, chosen by none
        model.configure_inference(**settings)
        rows.append(test_row("trial", valid_score, all(settings.get(k) == v for k, v in chosen.items())))
    provisional = trials[0][0]
    for name, settings in CONTROLS.items():
        model.configure_inference(**{**provisional, **settings, "reasoning_steps": model.n_codebooks})
        rows.append(test_row(name, validation_score(), False))
    # one-change ablations of the search at the best reasoning setting (the chosen one unless it is the ID head)
    searched = [(t, v) for t, v in trials if t["score_mode"] != "id"]
    best_search = max(searched, key=lambda tv: tv[1])[0]
    for name, switch in ABLATIONS.items():
        model.configure_inference(**best_search, **switch)
        rows.append(test_row(name, validation_score(), False))
        model.configure_inference(**{k: not v for k, v in switch.items()})
    return rows


def summary_markdown(rows: List[Dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# Inference settings chosen on validation ({len(seeds)} seed(s): {', '.join(map(str, seeds))})", "",
             "Selection on valid NDCG@10 only; test numbers reported. Same trained weights in every row of a seed.", ""]
    named = ["chosen on validation"] + list(CONTROLS) + list(ABLATIONS)
    per = {name: [] for name in named}
    lines += ["| seed | row | score_mode | w | reflection w | L | valid NDCG@10 | test NDCG@10 | test Recall@10 | first codebook ≠ most common |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for seed in seeds:
        mine = [r for r in rows if r["seed"] == seed]
        picks = [next(r for r in mine if r["chosen"])] + [next(r for r in mine if r["row"] == n) for n in named[1:]]
        for name, r in zip(named, picks):
            per[name].append(r)
            share = r["first_codebook_differs"]
            lines.append(f"| {seed} | {name} | {r['score_mode']} | {r['item_fusion_weight']:g} | {r['reflection_weight']:g} | "
                         f"{r['reasoning_steps']} | {r['valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} | "
                         f"{r['test_recall@10']:.4f} | {'—' if share != share else f'{100 * share:.1f} %'} |")
    if len(seeds) > 1:
        lines += ["", "| row | test NDCG@10 (mean ± std) | test Recall@10 |", "|---|---|---|"]
        for name in named:
            n = [r["test_ndcg@10"] for r in per[name]]
            rc = [r["test_recall@10"] for r in per[name]]
            lines.append(f"| {name} | {statistics.mean(n):.4f} ± {statistics.stdev(n):.4f} | "
                         f"{statistics.mean(rc):.4f} ± {statistics.stdev(rc):.4f} |")
    return "\n".join(lines) + "\n"


def inference_study_command(args: Namespace) -> int:
    """``reg4rec.py inference-study``: exit status 0, or 2 with one line when there is nothing to study."""
    files = [f for pattern in args.model_files for f in glob.glob(pattern)]
    if args.seeds:
        files += train_checkpoints(args.seeds, Path(args.train_output).resolve(), args.profile, args.overrides)
    if not files:
        print("error: give --model_files or --seeds N (to train stage-1 checkpoints first)", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model_file in files:
        rows += study_checkpoint(model_file, args.verbose)
        with open(out / "trials.csv", "w", newline="") as f:  # rewritten after every checkpoint
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    text = summary_markdown(rows)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0
