"""Alignment-stage (PARS / MSRA) experiments from one stage-1 model: which settings make stage 2
improve on the model it starts from?

Stage 1 is trained once (or taken from ``--stage1``); every variant then runs the alignment stage
from those same weights, and after each alignment epoch the script records the validation
NDCG@10 (what selection may use) and, for the report only, the test NDCG@10 of the current
weights, beside the epoch's reward statistics. Not a unit test: run it by hand or in the
background.

    python scripts/pars_sweep.py --output benchmarks/results/pars-sweep --pars_epochs 3 \\
        --variant default \\
        --variant tau0.5 pars_token_temperature=0.5 \\
        --variant H0 msra_horizon=0 \\
        --set MAX_ITEM_LIST_LENGTH=20 n_layers=1 inner_size=128 train_batch_size=512 epochs=10

Writes ``pars_sweep.csv`` (variant, epoch, valid/test NDCG@10 and Recall@10, reward means, KL,
seconds) and prints a table with the stage-1 row first.
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
import time
from pathlib import Path
from typing import Dict, List

import recbole_reg4rec  # noqa: F401  (compat layer + registry)
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed

from recbole_reg4rec.quick_start import reset_logger


def parse_settings(items: List[str]) -> Dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values read as Python literals when they are)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: setting {item!r} is not key=value")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def metrics_row(trainer, data) -> Dict[str, float]:
    result = trainer.evaluate(data, load_best_model=False, show_progress=False)
    return {"ndcg@10": float(result["ndcg@10"]), "recall@10": float(result["recall@10"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--stage1", help="REG4Rec checkpoint to start from (default: train stage 1 first)")
    parser.add_argument("--pars_epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--output", default="benchmarks/results/pars-sweep")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings of every run")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]",
                        help="an alignment variant: a name and its settings (repeat the flag)")
    args = parser.parse_args(argv)
    variants = [(v[0], parse_settings(v[1:])) for v in args.variant] or [("default", {})]
    shared = {"seed": args.seed, "show_progress": False, "stopping_step": 10**6, "eval_step": 1,
              "topk": [10], "metrics": ["Recall", "NDCG"], "valid_metric": "NDCG@10", **parse_settings(args.set)}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv

    config = Config(model="REG4Rec", dataset=args.dataset, config_dict={**shared, "pars_enabled": False})
    init_seed(config["seed"], config["reproducibility"])
    reset_logger()
    init_logger(config)
    train, valid, test = data_preparation(config, create_dataset(config))

    stage1 = args.stage1
    if not stage1:
        print(f"[sweep] training stage 1 ({config['epochs']} epochs)", flush=True)
        model = get_model("REG4Rec")(config, train._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], "REG4Rec")(config, model)
        trainer.fit(train, valid, saved=True, show_progress=False)
        stage1 = trainer.saved_model_file
    print(f"[sweep] stage-1 model: {stage1}", flush=True)

    rows = []
    for name, settings in variants:
        run_config = Config(model="REG4Rec", dataset=args.dataset, config_dict={
            **shared, **settings, "pars_enabled": True, "stage1_checkpoint": stage1, "pars_epochs": args.pars_epochs})
        init_seed(run_config["seed"], run_config["reproducibility"])
        model = get_model("REG4Rec")(run_config, train._dataset).to(run_config["device"])
        trainer = get_trainer(run_config["MODEL_TYPE"], "REG4Rec")(run_config, model)
        record = []
        original_valid = trainer._valid_epoch

        def valid_epoch(data, show_progress=False, _trainer=trainer, _record=record, _original=original_valid):
            score, result = _original(data, show_progress)
            _record.append((float(result["ndcg@10"]), float(result["recall@10"]), metrics_row(_trainer, test),
                            dict(getattr(_trainer, "last_alignment_stats", {})), time.perf_counter()))
            return score, result

        trainer._valid_epoch = valid_epoch
        if not rows:  # the stage-1 row, once: the weights every variant starts from
            from recbole_reg4rec.compat.checkpoints import load_checkpoint

            checkpoint = load_checkpoint(stage1, map_location=run_config["device"])
            model.load_state_dict(checkpoint["state_dict"])
            v, t = metrics_row(trainer, valid), metrics_row(trainer, test)
            rows.append({"seed": args.seed, "variant": "stage-1", "epoch": checkpoint["epoch"], "valid_ndcg@10": v["ndcg@10"],
                         "valid_recall@10": v["recall@10"], "test_ndcg@10": t["ndcg@10"],
                         "test_recall@10": t["recall@10"]})
        print(f"[sweep] variant {name}: {settings}", flush=True)
        start = time.perf_counter()
        trainer.fit(train, valid, saved=False, show_progress=False)
        previous = start
        for epoch, (v_ndcg, v_recall, t, stats, stamp) in enumerate(record, 1):
            rows.append({"seed": args.seed, "variant": name, "epoch": epoch, "valid_ndcg@10": v_ndcg, "valid_recall@10": v_recall,
                         "test_ndcg@10": t["ndcg@10"], "test_recall@10": t["recall@10"],
                         "seconds": round(stamp - previous, 1),
                         **{k: round(stats[k], 4) for k in ("reward_hit_mean", "reward_step_mean", "reward_total_mean",
                                                             "kl", "reflection_accuracy") if k in stats},
                         "settings": " ".join(f"{k}={v}" for k, v in settings.items())})
            previous = stamp
        with open(out / "pars_sweep.csv", "w", newline="") as f:
            fields = list(dict.fromkeys(k for row in rows for k in row))
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    print(f"\n{'variant':16s} {'epoch':>5s} {'valid N@10':>10s} {'test N@10':>9s} {'valid R@10':>10s} {'hit':>6s} {'s':>6s}")
    for row in rows:
        print(f"{row['variant']:16s} {row['epoch']:>5} {row['valid_ndcg@10']:10.4f} {row['test_ndcg@10']:9.4f} "
              f"{row['valid_recall@10']:10.4f} {row.get('reward_hit_mean', float('nan')):6.4f} {row.get('seconds', 0):6.1f}")
    print(f"[sweep] table: {out / 'pars_sweep.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
