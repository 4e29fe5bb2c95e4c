"""NDCG@10 against the reasoning steps L, from trained checkpoints (``reg4rec.py steps-curve``).

``reasoning_steps`` (L) acts at inference only: the beam search emits L tokens and completes the
items with the remaining codebooks' log-probabilities, so one trained model per seed is
evaluated at every L — the same evaluation the benchmark's ``--steps`` runs right after training
(:func:`recbole_reg4rec.benchmark.runner.evaluate_reasoning_steps`). Writes ``steps.csv`` (file,
seed, L, valid/test NDCG@10 and Recall@10) and ``steps_ndcg10.png`` (test NDCG@10 mean ± std over
the files against L), and prints the table.
"""

from __future__ import annotations

import csv
import statistics
import sys
from argparse import Namespace
from pathlib import Path


def steps_curve_command(args: Namespace) -> int:
    from ..benchmark.protocol import BenchmarkError, parse_steps
    from ..benchmark.runner import check_reasoning_steps, evaluate_reasoning_steps
    from ..quick_start import load_data_and_model
    from ..run import build_trainer

    try:
        steps = parse_steps(args.steps)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model_file in args.model_files:
        quiet = None if args.verbose else {"state": "WARNING"}  # no config dump unless asked
        config, model, _, _, valid, test = load_data_and_model(model_file, overrides=quiet)
        trainer = build_trainer(config, model)
        if args.fusion_weight is not None:
            # 0 = token paths only
            model.configure_inference(**({"score_mode": "tokens"} if args.fusion_weight == 0 else
                                         {"score_mode": "fused", "item_fusion_weight": args.fusion_weight}))
        try:
            check_reasoning_steps(model, steps)
        except ValueError as err:
            print(f"error: {model_file}: {err}", file=sys.stderr)
            return 2
        for result in evaluate_reasoning_steps(trainer, model, steps, valid, test):
            valid_result, test_result = result["valid"], result["test"]
            rows.append({"model_file": model_file, "seed": config["seed"], "L": result["steps"],
                         "item_fusion_weight": model.item_fusion_weight,
                         "valid_ndcg@10": valid_result["ndcg@10"], "valid_recall@10": valid_result["recall@10"],
                         "test_ndcg@10": test_result["ndcg@10"], "test_recall@10": test_result["recall@10"]})
            print(f"[steps] seed {config['seed']} L={result['steps']}: valid NDCG@10 {rows[-1]['valid_ndcg@10']:.4f}, "
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
    _plot(out / "steps_ndcg10.png", means, stds, len(args.model_files))
    print(f"[steps] {out / 'steps.csv'}, {out / 'steps_ndcg10.png'}")
    return 0


def _plot(path: Path, means, stds, n_files: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    ls = sorted(means)
    ax.errorbar(ls, [means[L] for L in ls], yerr=[stds[L] for L in ls], marker="o", capsize=4,
                label=f"REG4Rec ({n_files} seed{'s' if n_files > 1 else ''})")
    ax.set_xlabel("reasoning steps L")
    ax.set_ylabel("test NDCG@10")
    ax.set_xticks(ls)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
