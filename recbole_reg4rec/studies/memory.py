"""Long-run memory check (``reg4rec.py memory``): train for many epochs and record memory after each.

A leak shows as resident memory that keeps growing epoch after epoch once the first epochs have
allocated their caches. Writes ``memory.csv`` (epoch, stage, seconds, RSS MB, peak RSS MB) and
``memory.png``, and prints a summary with the RSS drift over the second half of each stage.
"""

from __future__ import annotations

import csv
import os
import resource
import time
from argparse import Namespace
from pathlib import Path
from typing import Dict, List


def stage_summaries(rows: List[Dict]) -> List[str]:
    """One line per training stage: RSS range and drift, the stage's first epoch (which allocates
    that stage's buffers) left out. A leak shows as a drift that keeps growing with the epochs."""
    lines = []
    for stage in sorted({r["stage"] for r in rows}):
        rss = [r["rss_mb"] for r in rows if r["stage"] == stage]
        steady = rss[1:] or rss
        half = max(1, len(steady) // 2)
        drift = sum(steady[half:]) / max(1, len(steady[half:])) - sum(steady[:half]) / half
        lines.append(f"stage {stage}: {len(rss)} epochs, RSS after epoch 2..{len(rss)}: {min(steady):.0f}-{max(steady):.0f} MB, "
                     f"mean of the second half minus the first: {drift:+.1f} MB")
    return lines


def report(rows: List[Dict], out: Path, model: str, dataset: str) -> None:
    """Print the per-stage summary and write ``memory.png`` beside ``memory.csv``."""
    print(f"[memory] epochs: {len(rows)}, final RSS {rows[-1]['rss_mb']} MB, peak {rows[-1]['peak_rss_mb']} MB")
    for line in stage_summaries(rows):
        print(f"[memory] {line}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([r["epoch"] for r in rows], [r["rss_mb"] for r in rows], marker="o", label="RSS after epoch")
    ax.plot([r["epoch"] for r in rows], [r["peak_rss_mb"] for r in rows], linestyle="--", label="peak RSS")
    switch = next((r["epoch"] for r in rows if r["stage"] == 2), None)
    if switch is not None:
        ax.axvline(switch - 0.5, color="grey", linewidth=0.8)
        ax.annotate("stage 2", (switch - 0.3, ax.get_ylim()[0]), fontsize=8, color="grey", va="bottom")
    ax.set_xlabel("epoch (stage 2 continues stage 1's numbering)")
    ax.set_ylabel("MB")
    ax.set_title(f"{model} on {dataset}: memory per epoch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=120)


def read_rows(path: str) -> List[Dict]:
    with open(path, newline="") as f:
        return [{k: (int(v) if k in ("epoch", "stage") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def memory_command(args: Namespace) -> int:
    if args.from_csv:
        report(read_rows(args.from_csv), Path(args.from_csv).parent, args.model, args.dataset)
        return 0
    import psutil

    from ..run import make_config, parse_overrides, prepare_run, seed_everything, start_logging

    quiet = {} if args.verbose else {"state": "WARNING"}  # RecBole's log only with --verbose
    overrides = {"epochs": args.epochs, "pars_epochs": args.pars_epochs, "stopping_step": 10**6,
                 "show_progress": False, "eval_step": 5, **quiet, **parse_overrides("--" + s for s in args.set)}
    config = make_config(args.model, args.dataset, None, overrides)
    seed_everything(config)
    start_logging(config)
    run = prepare_run(config)
    trainer = run.trainer

    process = psutil.Process(os.getpid())
    rows: List[Dict] = []
    original = trainer._train_epoch

    def measured_epoch(data, epoch_idx, *a, **k):
        start = time.perf_counter()
        loss = original(data, epoch_idx, *a, **k)
        rows.append({
            "epoch": epoch_idx,
            "stage": getattr(trainer, "stage", 1),
            "seconds": round(time.perf_counter() - start, 2),
            "rss_mb": round(process.memory_info().rss / 2**20, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        })
        print(f"[memory] epoch {epoch_idx} stage {rows[-1]['stage']}: {rows[-1]}", flush=True)
        return loss

    trainer._train_epoch = measured_epoch
    trainer.fit(run.train_data, run.valid_data, saved=True, show_progress=False)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "memory.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report(rows, out, args.model, args.dataset)
    return 0
