"""Benchmark REG4Rec against SASRec on ml-100k (leave-one-out, full ranking), same shared sizes.

Usage: python scripts/bench_reg4rec_ml100k.py --models SASRec REG4Rec --epochs 30 [--set key=value ...]
Prints per model: epochs run, mean s/epoch, test metrics and seconds to evaluate all test users.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import recbole_reg4rec  # noqa: F401  (compat layer + registry)
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed

SHARED = {
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 64,
    "inner_size": 128,
    "n_layers": 1,
    "n_heads": 2,
    "hidden_dropout_prob": 0.2,
    "attn_dropout_prob": 0.2,
    "train_batch_size": 512,
    "eval_batch_size": 262144,
    "learning_rate": 0.001,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "stopping_step": 5,
    "metrics": ["Recall", "NDCG", "MRR", "Hit"],
    "topk": [10, 20],
    "valid_metric": "NDCG@10",
    "show_progress": False,
    "reproducibility": True,
}


def run(model_name: str, epochs: int, seed: int, extra: dict) -> dict:
    cfg = dict(SHARED, epochs=epochs, seed=seed, **(extra if model_name != "SASRec" else {}))
    sys.argv = sys.argv[:1]
    config = Config(model=model_name, dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    t0 = time.perf_counter()
    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    init_s = time.perf_counter() - t0
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    times = []
    original = trainer._train_epoch

    def timed(*a, **k):
        s = time.perf_counter()
        out = original(*a, **k)
        times.append(time.perf_counter() - s)
        return out

    trainer._train_epoch = timed
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    t0 = time.perf_counter()
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    eval_s = time.perf_counter() - t0
    return {
        "model": model_name, "seed": seed, "epochs": len(times), "s_per_epoch": sum(times) / len(times),
        "init_s": init_s, "test_eval_s": eval_s, "best_valid_ndcg10": best_valid,
        **{k: float(v) for k, v in result.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["SASRec", "REG4Rec"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--set", nargs="*", default=[], help="REG4Rec overrides key=value (yaml values)")
    args = ap.parse_args()
    import yaml

    extra = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    rows = [run(m, args.epochs, args.seed, extra) for m in args.models]
    for r in rows:
        print("RESULT", json.dumps(r))


if __name__ == "__main__":
    main()
