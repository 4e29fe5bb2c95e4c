"""Long-run memory check: train REG4Rec for many epochs and record memory after every epoch.

A leak shows as resident memory that keeps growing epoch after epoch once the first epochs have
allocated their caches. Not a unit test: run it by hand or in the background.

    python scripts/long_run_memory.py --epochs 30 --pars_epochs 10 --output benchmarks/results/memory

Writes ``memory.csv`` (epoch, stage, seconds, RSS MB, peak RSS MB), ``memory.png`` and prints a
summary including the RSS growth over the second half of the run.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import resource
import sys
import time
from pathlib import Path

import psutil

import recbole_reg4rec  # noqa: F401  (compat layer + registry)
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed

from recbole_reg4rec.quick_start import reset_logger


def stage_summaries(rows):
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


def report(rows, out: Path, model: str, dataset: str) -> None:
    """Print the per-stage summary and write ``memory.png`` beside ``memory.csv``."""
    print(f"[memory] epochs: {len(rows)}, final RSS {rows[-1]['rss_mb']} MB, peak {rows[-1]['peak_rss_mb']} MB")
    for line in stage_summaries(rows):
        print(f"[memory] {line}")
    try:
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
    except ImportError:
        pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="REG4Rec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=30, help="stage-1 epochs (early stopping off)")
    parser.add_argument("--pars_epochs", type=int, default=10, help="stage-2 epochs")
    parser.add_argument("--output", default="benchmarks/results/memory")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides")
    parser.add_argument("--from_csv", help="only summarise and re-plot an earlier run's memory.csv")
    args = parser.parse_args(argv)
    if args.from_csv:
        with open(args.from_csv, newline="") as f:
            rows = [{k: (int(v) if k in ("epoch", "stage") else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]
        report(rows, Path(args.from_csv).parent, args.model, args.dataset)
        return 0

    overrides = {"epochs": args.epochs, "pars_epochs": args.pars_epochs, "stopping_step": 10**6,
                 "show_progress": False, "eval_step": 5}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    config = Config(model=args.model, dataset=args.dataset, config_dict=overrides)
    init_seed(config["seed"], config["reproducibility"])
    reset_logger()
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    process = psutil.Process(os.getpid())
    rows = []
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
    trainer.fit(train, valid, saved=True, show_progress=False)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "memory.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report(rows, out, args.model, args.dataset)
    return 0


if __name__ == "__main__":
    sys.exit(main())
