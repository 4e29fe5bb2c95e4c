"""NDCG@10 against the number of reasoning steps L, from trained REG4Rec checkpoints.

``reasoning_steps`` (L) acts at inference only: the beam search emits L tokens and completes the
items with the remaining codebooks' log-probabilities. So one trained model per seed is evaluated
at every L (``run_benchmark.py --steps`` retrains a model per L instead). Not a unit test.

    python scripts/steps_curve.py --model_files saved/REG4Rec-A.pth saved/REG4Rec-B.pth \\
        --steps 1-4 --output benchmarks/results/steps

Writes ``steps.csv`` (file, seed, L, valid/test NDCG@10 and Recall@10), ``steps_ndcg10.png``
(test NDCG@10 mean ± std over the files against L) and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import List

import recbole_reg4rec  # noqa: F401  (compat layer + registry)
from recbole.utils import get_trainer

from recbole_reg4rec.quick_start import load_data_and_model


def parse_steps(text: str) -> List[int]:
    """``"1-4"`` or ``"1,2,4"`` -> sorted list of L."""
    if "-" in text:
        first, last = (int(x) for x in text.split("-", 1))
        return list(range(first, last + 1))
    return sorted(int(x) for x in text.split(","))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_files", nargs="+", required=True, help="REG4Rec checkpoints (one per seed)")
    parser.add_argument("--steps", default="1-4", help="L values, e.g. 1-4 or 1,2,4 (each between 1 and M)")
    parser.add_argument("--output", default="benchmarks/results/steps")
    parser.add_argument("--fusion_weight", type=float, default=None,
                        help="evaluate with this item_fusion_weight instead of the trained one (0 = token paths only)")
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv

    rows = []
    for model_file in args.model_files:
        config, model, _, _, valid, test = load_data_and_model(model_file)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        steps = parse_steps(args.steps)
        if args.fusion_weight is not None:  # 0 = token paths only
            model.configure_inference(**({"score_mode": "tokens"} if args.fusion_weight == 0 else
                                         {"score_mode": "fused", "item_fusion_weight": args.fusion_weight}))
        if max(steps) > model.n_codebooks or min(steps) < 1:
            raise SystemExit(f"error: --steps {args.steps}: L must lie in 1..{model.n_codebooks} for {model_file}")
        for L in steps:
            model.configure_inference(reasoning_steps=L)
            v = trainer.evaluate(valid, load_best_model=False, show_progress=False)
            t = trainer.evaluate(test, load_best_model=False, show_progress=False)
            rows.append({"model_file": model_file, "seed": config["seed"], "L": L,
                         "item_fusion_weight": model.item_fusion_weight,
                         "valid_ndcg@10": float(v["ndcg@10"]), "valid_recall@10": float(v["recall@10"]),
                         "test_ndcg@10": float(t["ndcg@10"]), "test_recall@10": float(t["recall@10"])})
            print(f"[steps] seed {config['seed']} L={L}: valid NDCG@10 {rows[-1]['valid_ndcg@10']:.4f}, "
                  f"test NDCG@10 {rows[-1]['test_ndcg@10']:.4f}", flush=True)
    with open(out / "steps.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    by_l = {}
    for row in rows:
        by_l.setdefault(row["L"], []).append(row["test_ndcg@10"])
    means = {L: statistics.mean(v) for L, v in by_l.items()}
    stds = {L: statistics.stdev(v) if len(v) > 1 else 0.0 for L, v in by_l.items()}
    print(f"\n{'L':>3s} {'test NDCG@10 (mean ± std over ' + str(len(args.model_files)) + ' files)':>44s}")
    for L in sorted(by_l):
        print(f"{L:>3d} {means[L]:>28.4f} ± {stds[L]:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    ls = sorted(by_l)
    ax.errorbar(ls, [means[L] for L in ls], yerr=[stds[L] for L in ls], marker="o", capsize=4,
                label=f"REG4Rec ({len(args.model_files)} seed{'s' if len(args.model_files) > 1 else ''})")
    ax.set_xlabel("reasoning steps L")
    ax.set_ylabel("test NDCG@10")
    ax.set_xticks(ls)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "steps_ndcg10.png", dpi=120)
    print(f"[steps] {out / 'steps.csv'}, {out / 'steps_ndcg10.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
