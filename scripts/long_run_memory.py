"""Long-run memory check: train REG4Rec for many epochs and record memory after every epoch.

A leak shows as resident memory that keeps growing epoch after epoch once the first epochs have
allocated their caches. Not a unit test: run it by hand or in the background.

    python scripts/long_run_memory.py --epochs 30 --pars_epochs 10 --output benchmarks/results/memory

Writes ``memory.csv`` (epoch, stage, seconds, RSS MB, peak RSS MB), ``memory.png`` and prints a
summary including the RSS growth over the second half of the run.
"""

from __future__ import annotations

import argparse
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="REG4Rec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=30, help="stage-1 epochs (early stopping off)")
    parser.add_argument("--pars_epochs", type=int, default=10, help="stage-2 epochs")
    parser.add_argument("--output", default="benchmarks/results/memory")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides")
    args = parser.parse_args(argv)

    overrides = {"epochs": args.epochs, "pars_epochs": args.pars_epochs, "stopping_step": 10**6,
                 "show_progress": False, "eval_step": 5}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = eval(value, {}, {}) if value[:1].isdigit() or value in ("True", "False", "None") else value
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
    half = rows[len(rows) // 2 :]
    growth = half[-1]["rss_mb"] - half[0]["rss_mb"]
    print(f"[memory] epochs: {len(rows)}, final RSS {rows[-1]['rss_mb']} MB, peak {rows[-1]['peak_rss_mb']} MB, "
          f"RSS growth over the second half: {growth:+.1f} MB")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([r["epoch"] for r in rows], [r["rss_mb"] for r in rows], marker="o", label="RSS after epoch")
        ax.plot([r["epoch"] for r in rows], [r["peak_rss_mb"] for r in rows], linestyle="--", label="peak RSS")
        ax.set_xlabel("epoch (stage 2 continues stage 1's numbering)")
        ax.set_ylabel("MB")
        ax.set_title(f"{args.model} on {args.dataset}: memory per epoch")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=120)
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
