"""Alignment-stage (PARS / MSRA) study: which settings make stage 2 improve on its stage-1 model?

``reg4rec.py pars-sweep`` trains stage 1 once (or takes ``--stage1``); every variant then runs the
alignment stage from those same weights, and after each alignment epoch the study records the
validation NDCG@10 (what selection may use) and, for the report only, the test NDCG@10 of the
current weights, beside the epoch's reward statistics (``pars_sweep.csv``).

``reg4rec.py pars-sweep-report`` reads one such csv per seed. Per seed and variant the *selected*
model is the epoch with the best validation NDCG@10, the stage-1 model included and winning ties
(the trainer keeps the stage-1 model unless stage 2 beats it); the table gives mean ± std over
seeds. Selection never looks at test numbers.
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import Dict, List

#: columns of the report, per selected model
METRICS = ("valid_ndcg@10", "test_ndcg@10", "valid_recall@10", "test_recall@10")
#: alignment statistics copied from the trainer into each epoch's row
STATS = ("reward_hit_mean", "reward_step_mean", "reward_total_mean", "kl", "reflection_accuracy")


def _settings(items) -> Dict:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values typed as on RecBole's command line)."""
    from ..run import parse_overrides

    return parse_overrides("--" + item for item in items)


def metrics_row(trainer, data) -> Dict[str, float]:
    result = trainer.evaluate(data, load_best_model=False, show_progress=False)
    return {"ndcg@10": float(result["ndcg@10"]), "recall@10": float(result["recall@10"])}


def _write_csv(path: Path, rows: List[Dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)


def sweep_command(args: Namespace) -> int:
    from ..compat.checkpoints import load_checkpoint
    from ..run import OverrideError, load_data, make_config, prepare_run, seed_everything, start_logging

    try:
        variants = [(v[0], _settings(v[1:])) for v in args.variant] or [("default", {})]
        quiet = {} if args.verbose else {"state": "WARNING"}  # RecBole's log only with --verbose
        shared = {"seed": args.seed, "show_progress": False, "stopping_step": 10**6, "eval_step": 1,
                  "topk": [10], "metrics": ["Recall", "NDCG"], "valid_metric": "NDCG@10", **quiet,
                  **_settings(args.set)}
    except OverrideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    config = make_config("REG4Rec", args.dataset, None, {**shared, "pars_enabled": False})
    seed_everything(config)
    start_logging(config)
    data = load_data(config)  # every variant trains and evaluates on these loaders
    _, _, valid, test = data

    stage1 = args.stage1
    if not stage1:
        print(f"[sweep] training stage 1 ({config['epochs']} epochs)", flush=True)
        run = prepare_run(config, data)
        run.trainer.fit(run.train_data, valid, saved=True, show_progress=False)
        stage1 = run.trainer.saved_model_file
    print(f"[sweep] stage-1 model: {stage1}", flush=True)

    rows = []
    for name, settings in variants:
        run_config = make_config("REG4Rec", args.dataset, None, {
            **shared, **settings, "pars_enabled": True, "stage1_checkpoint": stage1, "pars_epochs": args.pars_epochs})
        run = prepare_run(run_config, data)
        trainer = run.trainer
        record = []
        original_valid = trainer._valid_epoch

        def valid_epoch(data, show_progress=False, _trainer=trainer, _record=record, _original=original_valid):
            score, result = _original(data, show_progress)
            _record.append((float(result["ndcg@10"]), float(result["recall@10"]), metrics_row(_trainer, test),
                            dict(getattr(_trainer, "last_alignment_stats", {})), time.perf_counter()))
            return score, result

        trainer._valid_epoch = valid_epoch
        if not rows:  # the stage-1 row, once: the weights every variant starts from
            checkpoint = load_checkpoint(stage1, map_location=run_config["device"])
            run.model.load_state_dict(checkpoint["state_dict"])
            trainer.choose_auto_inference(valid, saved=False)  # the settings every variant's stage 2 validates under
            v, t = metrics_row(trainer, valid), metrics_row(trainer, test)
            rows.append({"seed": args.seed, "variant": "stage-1", "epoch": checkpoint["epoch"], "valid_ndcg@10": v["ndcg@10"],
                         "valid_recall@10": v["recall@10"], "test_ndcg@10": t["ndcg@10"],
                         "test_recall@10": t["recall@10"]})
        print(f"[sweep] variant {name}: {settings}", flush=True)
        previous = time.perf_counter()
        trainer.fit(run.train_data, valid, saved=False, show_progress=False)
        for epoch, (v_ndcg, v_recall, t, stats, stamp) in enumerate(record, 1):
            rows.append({"seed": args.seed, "variant": name, "epoch": epoch, "valid_ndcg@10": v_ndcg, "valid_recall@10": v_recall,
                         "test_ndcg@10": t["ndcg@10"], "test_recall@10": t["recall@10"],
                         "seconds": round(stamp - previous, 1),
                         **{k: round(stats[k], 4) for k in STATS if k in stats},
                         "settings": " ".join(f"{k}={v}" for k, v in settings.items())})
            previous = stamp
        _write_csv(out / "pars_sweep.csv", rows)

    print(f"\n{'variant':16s} {'epoch':>5s} {'valid N@10':>10s} {'test N@10':>9s} {'valid R@10':>10s} {'hit':>6s} {'s':>6s}")
    for row in rows:
        print(f"{row['variant']:16s} {row['epoch']:>5} {row['valid_ndcg@10']:10.4f} {row['test_ndcg@10']:9.4f} "
              f"{row['valid_recall@10']:10.4f} {row.get('reward_hit_mean', float('nan')):6.4f} {row.get('seconds', 0):6.1f}")
    print(f"[sweep] table: {out / 'pars_sweep.csv'}")
    return 0


def mean_std(values: List[float]) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def selected_rows(frame):
    """One row per (seed, variant): the model the trainer would keep (best valid NDCG@10,
    stage 1 on ties)."""
    import pandas as pd

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


def report(frame) -> str:
    """The across-seed markdown table of a frame of ``pars_sweep.csv`` rows."""
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


def report_command(args: Namespace) -> int:
    import pandas as pd

    frames = []
    for path in args.csv:
        frame = pd.read_csv(path)
        if "seed" not in frame.columns:
            print(f"error: {path} has no seed column (written by an older pars-sweep); rerun the sweep", file=sys.stderr)
            return 2
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["settings"] = frame.get("settings", pd.Series("", index=frame.index)).fillna("")
    text = report(frame)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return 0
