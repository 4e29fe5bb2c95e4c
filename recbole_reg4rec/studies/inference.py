"""Inference settings of trained REG4Rec checkpoints, chosen on validation, test only reported.

Every inference setting (score mode, ID-head weight w, first-step weight u, reflection weight, reasoning steps L) acts at
inference only, so one trained model per seed serves the whole study. For each checkpoint:

1. the ``auto`` selection of the trainer (:mod:`recbole_reg4rec.trainer.inference_selection`) runs
   on the validation split with every setting searched;
2. every setting it tried is then evaluated on the test split as well (reported, never chosen);
3. the controls of the same weights: the ID head alone (``score_mode=id``), the previous default
   (``fused``, w = 4, no reflection, L = M), token scores alone, and token scores plus the first-step
   score (u = 1); the inference-only ablations
   at the best searched setting (no prior steering = REG4Rec_woSteering, plain beam =
   REG4Rec_woCORP); plus the share of users whose first CRSS codebook differs from the most
   common one;
4. complementarity (:func:`complementarity`): does the token model know anything the ID head does
   not? NDCG@10 of ``w * log p_ID + token score`` (no prior steering, every item scored) at every w
   of the auto grid, on validation *and* test — a diagnostic of the same weights, never a choice —
   and the shares of users whose target only one of the two rankers puts in its top 10.

    # checkpoints you already have (one per seed)
    python reg4rec.py inference-study --model_files saved/REG4Rec-A.pth --output results/inference-ml-100k
    # or train stage-1 checkpoints first (reg4rec.py benchmark, quick profile, seeds 2020, 2021, ...)
    python reg4rec.py inference-study --seeds 3 --train_output runs/stage1 --output results/inference-ml-100k

Writes ``trials.csv`` (checkpoint, seed, settings, valid/test NDCG@10 and Recall@10, chosen flag),
``complementarity.csv`` (checkpoint, seed, split, one NDCG@10 column per ranker), ``summary.md`` (per seed: chosen settings and their test numbers beside the controls; mean ± std
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
    "ID head alone": {"score_mode": "id"},  # without an ID head: the composed item head alone
    "previous default (fused, w=4)": {"score_mode": "fused", "item_fusion_weight": 4.0, "first_step_weight": 0.0,
                                      "reflection_weight": 0.0,
                                      "reflection_threshold": 0.0},
    "token scores alone": {"score_mode": "tokens", "first_step_weight": 0.0, "reflection_weight": 0.0,
                           "reflection_threshold": 0.0},
    # the token side with the start state's view of each item added (u = 1): what the paper-faithful model ranks by
    "token scores + first-step score (u=1)": {"score_mode": "tokens", "first_step_weight": 1.0, "reflection_weight": 0.0,
                                              "reflection_threshold": 0.0},
}

#: the ``ID head alone`` control's name in a model without an ID head (score mode ``id`` ranks by the composed head)
COMPOSED_ALONE = "composed head alone"

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
    searched = ("score_mode", "item_fusion_weight", "first_step_weight", "reflection_weight", "reasoning_steps")
    searched = searched if model.item_head_enabled else searched[2:]

    def validation_score() -> float:
        return float(trainer.evaluate(valid, load_best_model=False, show_progress=False)[metric])

    chosen, trials = select_inference_settings(model, lambda: trainer.validation_values(valid), searched=searched)
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
        mode = settings["score_mode"]
        if not model.item_head_enabled and mode != "tokens":  # no ID head: only the composed head's own control
            if mode != "id" or not model.composed_head_enabled:
                continue
            name = COMPOSED_ALONE
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


def _ndcg_at(scores, positives, k: int):
    """Per-user NDCG@k of one held-out item each: ``scores [B, N]``, ``positives [B]`` -> ``[B]``."""
    import torch

    rank = (scores > scores.gather(1, positives.unsqueeze(1))).sum(1)  # items strictly above the target
    return torch.where(rank < k, 1.0 / torch.log2(rank.double() + 2), torch.zeros_like(rank, dtype=torch.double))


def complementarity(model, data, k: int = 10) -> Dict[str, float]:
    """NDCG@k on ``data`` (a full-sort split) of the ID head, of the token scores (beam-reached items
    by their beam score, the others by the first-step fallback, searched without prior steering) and of
    ``w * log p_ID + token score`` for every w of the auto grid; ``only_id`` / ``only_tokens``: shares
    of users whose target only that ranker puts in its top k."""
    import math

    import torch

    from ..trainer.inference_selection import FUSION_WEIGHTS

    previous = model.configure_inference(score_mode="tokens")  # the search reads token scores only
    ids, tokens, targets = [], [], []
    try:
        with torch.no_grad():
            for interaction, history, _, positives in data:
                ctx = model.encode(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
                result, _, fallback = model.beam_search(ctx)
                token_score = torch.where(torch.isfinite(result.item_scores), result.item_scores, fallback)
                log_p = model.item_level_scores(ctx)  # the ID head, or the composed head without one
                for scores in (token_score, log_p):
                    if history is not None:  # RecBole's full-sort masking of already seen items
                        scores[history[0], history[1]] = -math.inf
                    scores[:, 0] = -math.inf
                tokens.append(token_score)
                ids.append(log_p)
                targets.append(positives)
    finally:
        model.configure_inference(**previous)
    log_p, token_score, target = torch.cat(ids), torch.cat(tokens), torch.cat(targets)
    by_id, by_tokens = _ndcg_at(log_p, target, k), _ndcg_at(token_score, target, k)
    row = {"id": by_id.mean().item(), "tokens": by_tokens.mean().item()}
    for w in FUSION_WEIGHTS:
        row[f"w={w:g}"] = _ndcg_at(w * log_p + token_score, target, k).mean().item()
    row["only_id"] = ((by_id > 0) & (by_tokens == 0)).double().mean().item()
    row["only_tokens"] = ((by_tokens > 0) & (by_id == 0)).double().mean().item()
    return row


def complementarity_rows(model_file: str) -> List[Dict]:
    """:func:`complementarity` of one checkpoint on its validation and test splits."""
    from ..quick_start import load_data_and_model

    config, model, _, _, valid, test = load_data_and_model(model_file, overrides={"state": "WARNING"})
    model.eval()
    if not (model.item_head_enabled or model.composed_head_enabled):  # token scores only: nothing to blend
        return []
    return [{"model_file": model_file, "seed": config["seed"], "split": name, **complementarity(model, data)}
            for name, data in (("valid", valid), ("test", test))]


def complementarity_markdown(rows: List[Dict]) -> str:
    columns = [k for k in rows[0] if k not in ("model_file", "seed", "split")]
    lines = ["## Complementarity: ID head + w x token score (diagnostic of the same weights; nothing chosen here)", "",
             "NDCG@10; `only_id` / `only_tokens`: share of users whose target only that ranker has in its top 10.", "",
             "| seed | split | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['split']} | " + " | ".join(f"{r[c]:.4f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def summary_markdown(rows: List[Dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"# Inference settings chosen on validation ({len(seeds)} seed(s): {', '.join(map(str, seeds))})", "",
             "Selection on valid NDCG@10 only; test numbers reported. Same trained weights in every row of a seed.", ""]
    present = {r["row"] for r in rows}  # a model without an ID head has fewer controls
    named = ["chosen on validation"] + [n for n in (*CONTROLS, COMPOSED_ALONE, *ABLATIONS) if n in present]
    per = {name: [] for name in named}
    lines += ["| seed | row | score_mode | w | u | reflection w | L | valid NDCG@10 | test NDCG@10 | test Recall@10 | "
              "first codebook ≠ most common |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed in seeds:
        mine = [r for r in rows if r["seed"] == seed]
        picks = [("chosen on validation", next(r for r in mine if r["chosen"]))]
        picks += [(n, r) for n in named[1:] for r in mine if r["row"] == n]
        for name, r in picks:
            per[name].append(r)
            share = r["first_codebook_differs"]
            lines.append(f"| {seed} | {name} | {r['score_mode']} | {r['item_fusion_weight']:g} | "
                         f"{r.get('first_step_weight', 0.0):g} | {r['reflection_weight']:g} | "
                         f"{r['reasoning_steps']} | {r['valid_ndcg@10']:.4f} | {r['test_ndcg@10']:.4f} | "
                         f"{r['test_recall@10']:.4f} | {'—' if share != share else f'{100 * share:.1f} %'} |")
    if len(seeds) > 1:
        lines += ["", "| row | test NDCG@10 (mean ± std) | test Recall@10 |", "|---|---|---|"]
        for name in named:
            if len(per[name]) < 2:
                continue
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
    rows, blends = [], []
    for model_file in files:
        rows += study_checkpoint(model_file, args.verbose)
        blends += complementarity_rows(model_file)
        for name, table in (("trials.csv", rows), ("complementarity.csv", blends)):  # rewritten per checkpoint
            if not table:
                continue
            with open(out / name, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
    text = summary_markdown(rows) + ("\n" + complementarity_markdown(blends) if blends else "")
    (out / "summary.md").write_text(text, encoding="utf-8")
    print(text)
    return 0
