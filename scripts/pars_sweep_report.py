"""Across-seed summary of ``scripts/pars_sweep.py`` runs: does an alignment variant improve on the
stage-1 model it starts from, when the epoch is chosen the way the trainer chooses it?

Each input is one sweep's ``pars_sweep.csv`` (one seed: a ``stage-1`` row, then one row per
variant and alignment epoch). Per seed and variant the *selected* model is the epoch with the
best validation NDCG@10, the stage-1 model included and winning ties (the trainer keeps the
stage-1 model unless stage 2 beats it). The table gives, as mean ± std over seeds, the selected
model's validation and test NDCG@10 / Recall@10, its test change against stage 1, the number of
seeds in which stage 2 was selected, and the mean test NDCG@10 after each alignment epoch
(unselected, for the learning curve only). Selection never looks at test numbers.

    python scripts/pars_sweep_report.py benchmarks/results/pars-gpu/seed*/pars_sweep.csv \\
        --output benchmarks/pars-sweep-ml-100k/summary.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import List

import pandas as pd

METRICS = ("valid_ndcg@10", "test_ndcg@10", "valid_recall@10", "test_recall@10")


def mean_std(values: List[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def selected_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (seed, variant): the model the trainer would keep (best valid NDCG@10,
    stage 1 on ties)."""
    out = []
    for seed, runs in frame.groupby("seed"):
        stage1 = runs[runs["variant"] == "stage-1"].iloc[0]
        for variant, epochs in runs[runs["variant"] != "stage-1"].groupby("variant", sort=False):
            best = epochs.loc[epochs["valid_ndcg@10"].idxmax()]
            chosen = best if best["valid_ndcg@10"] > stage1["valid_ndcg@10"] else stage1
            row = {"seed": seed, "variant": variant, "stage2_selected": chosen is best,
                   "selected_epoch": int(best["epoch"]) if chosen is best else 0,
                   "test_ndcg_change": chosen["test_ndcg@10"] - stage1["test_ndcg@10"],
                   "settings": best.get("settings", "")}
            row.update({m: chosen[m] for m in METRICS})
            out.append(row)
    return pd.DataFrame(out)


def report(frame: pd.DataFrame) -> str:
    seeds = sorted(frame["seed"].unique())
    stage1 = frame[frame["variant"] == "stage-1"]
    chosen = selected_rows(frame)
    n_epochs = int(frame.loc[frame["variant"] != "stage-1", "epoch"].max())
    lines = [
        f"Seeds {', '.join(str(s) for s in seeds)}; selection on validation NDCG@10 (stage 1 kept on ties).",
        "",
        "| variant | settings | stage 2 selected | valid NDCG@10 | test NDCG@10 | test Δ vs stage 1 | test Recall@10 | "
        + " | ".join(f"test N@10 ep {e}" for e in range(1, n_epochs + 1)) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * n_epochs,
        f"| stage 1 | – | – | {mean_std(list(stage1['valid_ndcg@10']))} | {mean_std(list(stage1['test_ndcg@10']))} | – | "
        f"{mean_std(list(stage1['test_recall@10']))} | " + " | ".join("–" for _ in range(n_epochs)) + " |",
    ]
    for variant, rows in chosen.groupby("variant", sort=False):
        curve = frame[frame["variant"] == variant].groupby("epoch")["test_ndcg@10"].mean()
        lines.append(
            f"| {variant} | {rows['settings'].iloc[0] or 'defaults'} | {int(rows['stage2_selected'].sum())}/{len(rows)} | "
            f"{mean_std(list(rows['valid_ndcg@10']))} | {mean_std(list(rows['test_ndcg@10']))} | "
            f"{statistics.mean(rows['test_ndcg_change']):+.4f} | {mean_std(list(rows['test_recall@10']))} | "
            + " | ".join(f"{curve.get(e, float('nan')):.4f}" for e in range(1, n_epochs + 1)) + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="+", help="pars_sweep.csv files, one per seed")
    parser.add_argument("--output", help="also write the markdown table here")
    args = parser.parse_args(argv)
    frames: List[pd.DataFrame] = []
    for path in args.csv:
        frame = pd.read_csv(path)
        if "seed" not in frame.columns:
            raise SystemExit(f"error: {path} has no seed column (written by an older pars_sweep.py); rerun the sweep")
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["settings"] = frame.get("settings", pd.Series("", index=frame.index)).fillna("")
    text = report(frame)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
