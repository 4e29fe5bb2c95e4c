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
    "train_batch_size": 2048,
    "eval_batch_size": 262144,
    "learning_rate": 0.002,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "stopping_step": 3,
    "metrics": ["Recall", "NDCG", "MRR", "Hit"],
    "topk": [10, 20],
    "valid_metric": "NDCG@10",
    "show_progress": False,
    "reproducibility": True,
    "pars_enabled": False,  # first stage only
}


FUSION_SWEEP = (1.0, 2.0, 4.0, 8.0)


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
    sweep = {}
    if hasattr(model, "item_fusion_weight") and model.item_fusion_weight > 0:
        # the fusion weight acts at inference only (the ID head's training weight is
        # item_loss_weight): rank the same checkpoint with other weights, valid and test
        chosen = model.item_fusion_weight
        for w in FUSION_SWEEP:
            model.configure_inference(item_fusion_weight=w)
            v = trainer.evaluate(valid, load_best_model=False, show_progress=False)
            t = trainer.evaluate(test, load_best_model=False, show_progress=False)
            sweep[str(w)] = {"valid_ndcg@10": float(v["ndcg@10"]), "test_ndcg@10": float(t["ndcg@10"]),
                             "test_recall@10": float(t["recall@10"])}
        model.configure_inference(item_fusion_weight=chosen)
    return {
        "fusion_sweep": sweep,
        "model": model_name, "seed": seed, "epochs": len(times), "s_per_epoch": sum(times) / len(times),
        "init_s": init_s, "test_eval_s": eval_s, "best_valid_ndcg10": best_valid,
        **{k: float(v) for k, v in result.items()},
    }


def paired_timing(n_batches: int, extra: dict, seed: int = 2020) -> dict:
    """Load-robust cost ratio: SASRec and REG4Rec training steps interleaved on the same batches
    (the machine is shared, so sequential epoch timings drift), then one full test evaluation each."""
    import torch

    sys.argv = sys.argv[:1]
    built = {}
    for name in ("SASRec", "REG4Rec"):
        cfg = dict(SHARED, epochs=1, seed=seed, **(extra if name != "SASRec" else {}))
        config = Config(model=name, dataset="ml-100k", config_dict=cfg)
        init_seed(seed, True)
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
        model = get_model(name)(config, train._dataset)
        built[name] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), test)
    built["REG4Rec"][0]._epoch = 10**6  # past the warm-up: CRSS order sampling on
    spent = {name: 0.0 for name in built}
    for i, batch in enumerate(train):
        if i >= n_batches:
            break
        for name, (model, opt, _) in built.items():
            model.train() if name == "SASRec" else torch.nn.Module.train(model, True)
            t0 = time.perf_counter()
            opt.zero_grad()
            model.calculate_loss(batch).backward()
            opt.step()
            spent[name] += time.perf_counter() - t0
    evals = {}
    for name, (model, _, test) in built.items():
        model.eval()
        t0 = time.perf_counter()
        n_users = 0
        with torch.no_grad():
            for inter, *_ in test:
                model.full_sort_predict(inter)
                n_users += inter.length
        evals[name] = (time.perf_counter() - t0, n_users)
    return {
        "train_s_per_batch": {k: v / n_batches for k, v in spent.items()},
        "train_ratio": spent["REG4Rec"] / spent["SASRec"],
        "eval_s": {k: v[0] for k, v in evals.items()},
        "eval_users": evals["REG4Rec"][1],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["SASRec", "REG4Rec"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--paired", type=int, default=0, help="only time N interleaved training batches + test eval")
    ap.add_argument("--set", nargs="*", default=[], help="REG4Rec overrides key=value (yaml values)")
    args = ap.parse_args()
    import yaml

    extra = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    if args.paired:
        print("PAIRED", json.dumps(paired_timing(args.paired, extra, args.seed)))
        return
    for m in args.models:
        print("RESULT", json.dumps(run(m, args.epochs, args.seed, extra)), flush=True)


if __name__ == "__main__":
    main()
