"""Tables and plots of a benchmark: per-run CSV, mean ± std summary, paired differences.

* :func:`runs_frame` flattens cell records into one row per run (``test_ndcg@10``,
  ``valid_ndcg@10``, cost columns ...) — written as ``runs.csv``.
* :func:`summarize` gives mean and std (sample std, ``ddof=1``) over seeds per model label —
  ``summary.csv`` and the tables of ``summary.md``.
* :func:`paired_differences`: the *baseline* is the RecBole built-in label with the best mean
  test NDCG@10; for every other label, per-seed differences ``label - baseline`` on the seeds
  both have, then their mean ± std — ``paired.csv``. The same seed means the same split,
  initialisation seed and data order, so paired differences cancel the seed-to-seed noise that
  the plain std of each model carries. ``train_s_per_epoch_ratio``: mean training seconds per
  epoch of the label over the baseline's.
* :func:`plot_metric_bars` (NDCG@10 and Recall@10 bars with std error bars) and
  :func:`plot_steps` (NDCG@10 against reasoning steps L, one line per model).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import pandas as pd

from .protocol import METRICS, inference_label

#: Cost columns of ``runs.csv`` summarised beside the metrics.
COST_COLUMNS: List[str] = ["epochs_trained", "train_s_per_epoch", "eval_s", "peak_rss_mb", "cuda_peak_mb"]
ID_COLUMNS: List[str] = ["label", "model", "kind", "seed", "steps", "variant", "dataset", "profile", "device", "config_hash"]


def _metric_columns(result: Dict) -> Dict[str, float]:
    """``valid_<metric>`` / ``test_<metric>`` columns of a result with ``valid`` and ``test`` dicts."""
    return {f"{split}_{metric}": (result.get(split) or {}).get(metric, math.nan)
            for split in ("valid", "test") for metric in METRICS}


def runs_frame(records: Iterable[Dict]) -> pd.DataFrame:
    """One row per finished cell, plus one per reasoning-steps setting L a cell was also
    evaluated at (``steps_results``, label ``<label>@L=<L>``: same training, so the same cost
    columns; its own metrics and test ``eval_s``), and one per other inference setting
    (``inference_results``, label ``<label>[score_mode=id]``). Metric columns ``valid_<metric>`` and
    ``test_<metric>``. A two-stage cell (``stage1_results``) also gives the row ``<label>[stage 1]``: the
    best stage-1 model the alignment stage started from; ``stage2_selected`` says whether stage 2 replaced it."""
    rows = []
    for r in records:
        row = {k: r.get(k) for k in ID_COLUMNS}
        row.update({k: r.get(k) for k in COST_COLUMNS + ["best_epoch", "fit_s", "valid_s_total", "model_init_s", "cell_s", "n_params"]})
        row.update(_metric_columns(r))
        row.update({k: r.get(k) for k in ("started_at", "finished_at", "run_id", "cell_id", "stage2_selected")})
        rows.append(row)
        if r.get("stage1_results"):
            rows.append({**row, "label": f"{r.get('label')}[stage 1]", "eval_s": None,
                         **_metric_columns(r["stage1_results"])})
        for result in r.get("steps_results") or []:
            rows.append({**row, "label": f"{r.get('label')}@L={result['steps']}", "steps": result["steps"],
                         "eval_s": result.get("eval_s"), **_metric_columns(result)})
        for result in r.get("inference_results") or []:  # the same model under other inference settings
            rows.append({**row, "label": inference_label(r.get("label"), result["settings"]),
                         "eval_s": result.get("eval_s"), **_metric_columns(result)})
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["label", "seed"], kind="stable").reset_index(drop=True)
    return frame


def _label_order(runs: pd.DataFrame) -> List[str]:
    return list(dict.fromkeys(runs["label"]))


def summarize(runs: pd.DataFrame, order: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Mean and std over seeds per label, for every test metric, valid NDCG@10 and cost column."""
    value_cols = [f"test_{m}" for m in METRICS] + ["valid_ndcg@10"] + COST_COLUMNS
    numeric = runs[["label"] + value_cols].copy()
    for col in value_cols:
        numeric[col] = pd.to_numeric(numeric[col], errors="coerce")
    grouped = numeric.groupby("label", sort=False)
    mean = grouped.mean().add_suffix("_mean")
    std = grouped.std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out.insert(0, "n_seeds", grouped.size())
    meta = runs.groupby("label", sort=False)[["model", "kind", "steps"]].first()
    out = meta.join(out)
    ordered = [c for c in ["model", "kind", "steps", "n_seeds"] if c in out.columns]
    for col in value_cols:
        ordered += [f"{col}_mean", f"{col}_std"]
    out = out[ordered]
    labels = [l for l in (order or _label_order(runs)) if l in out.index]
    return out.loc[labels].rename_axis("label").reset_index()


def best_baseline(runs: pd.DataFrame, metric: str = "test_ndcg@10") -> Optional[str]:
    """Built-in label with the best mean ``metric`` (``None`` without built-ins)."""
    builtin = runs[runs["kind"] == "builtin"]
    if builtin.empty:
        return None
    return str(builtin.groupby("label")[metric].mean().idxmax())


def paired_differences(runs: pd.DataFrame, baseline: str, metrics: Sequence[str] = ("ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20")) -> pd.DataFrame:
    """Per-seed ``label - baseline`` differences of test metrics, mean ± std over shared seeds."""
    base = runs[runs["label"] == baseline].set_index("seed")
    rows = []
    for label in _label_order(runs):
        if label == baseline:
            continue
        other = runs[runs["label"] == label].set_index("seed")
        seeds = sorted(set(base.index) & set(other.index))
        row: Dict[str, object] = {"label": label, "kind": other["kind"].iloc[0], "baseline": baseline, "n_paired": len(seeds)}
        for metric in metrics:
            col = f"test_{metric}"
            diff = (other.loc[seeds, col].astype(float) - base.loc[seeds, col].astype(float)) if seeds else pd.Series(dtype=float)
            row[f"{metric}_diff_mean"] = diff.mean() if len(diff) else math.nan
            row[f"{metric}_diff_std"] = diff.std(ddof=1) if len(diff) > 1 else math.nan
            base_mean = base.loc[seeds, col].astype(float).mean() if seeds else math.nan
            row[f"{metric}_rel_pct"] = 100.0 * row[f"{metric}_diff_mean"] / base_mean if base_mean else math.nan
        base_time = pd.to_numeric(base["train_s_per_epoch"], errors="coerce").mean()
        own_time = pd.to_numeric(other["train_s_per_epoch"], errors="coerce").mean()
        row["train_s_per_epoch_ratio"] = own_time / base_time if base_time else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(
    summary: pd.DataFrame,
    paired: Optional[pd.DataFrame],
    baseline: Optional[str],
    header: str,
    profile_notes: Sequence[str] = (),
    failed: Sequence[str] = (),
) -> str:
    """The ``summary.md`` text: metric table, cost table, paired differences, steps table."""
    lines = [header, ""]
    metric_cols = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hit") for k in (5, 10, 20)]
    table = pd.DataFrame({"model": summary["label"], "seeds": summary["n_seeds"]})
    for m in metric_cols:
        table[m.replace("recall", "Recall").replace("ndcg", "NDCG").replace("mrr", "MRR").replace("hit", "Hit")] = [
            _pm(a, b) for a, b in zip(summary[f"test_{m}_mean"], summary[f"test_{m}_std"])
        ]
    lines += ["## Test metrics (mean ± std over seeds)", "", table.to_markdown(index=False), ""]

    cost = pd.DataFrame({"model": summary["label"]})
    cost["valid NDCG@10"] = [_pm(a, b) for a, b in zip(summary["valid_ndcg@10_mean"], summary["valid_ndcg@10_std"])]
    cost["epochs"] = [_pm(a, b, 1) for a, b in zip(summary["epochs_trained_mean"], summary["epochs_trained_std"])]
    cost["train s/epoch"] = [_pm(a, b, 2) for a, b in zip(summary["train_s_per_epoch_mean"], summary["train_s_per_epoch_std"])]
    cost["eval s (test)"] = [_pm(a, b, 2) for a, b in zip(summary["eval_s_mean"], summary["eval_s_std"])]
    cost["peak RSS MB"] = [_pm(a, b, 0) for a, b in zip(summary["peak_rss_mb_mean"], summary["peak_rss_mb_std"])]
    if summary["cuda_peak_mb_mean"].notna().any():
        cost["peak CUDA MB"] = [_pm(a, b, 0) for a, b in zip(summary["cuda_peak_mb_mean"], summary["cuda_peak_mb_std"])]
    lines += ["## Validation, training and evaluation cost", "", cost.to_markdown(index=False), ""]

    if baseline is None:
        lines += ["## Paired differences", "", "No RecBole built-in model in this run: no baseline to compare with.", ""]
    elif paired is not None and not paired.empty:
        lines += [
            f"## Paired differences against the best baseline: {baseline}",
            "",
            f"Best RecBole built-in on mean test NDCG@10. For each seed, model − {baseline}; mean ± std "
            f"over the seeds both ran; rel. = mean difference / baseline mean.",
            "",
        ]
        pt = pd.DataFrame({"model": paired["label"], "kind": paired["kind"], "paired seeds": paired["n_paired"]})
        for metric, name in (("ndcg@10", "NDCG@10"), ("recall@10", "Recall@10"), ("mrr@10", "MRR@10"), ("ndcg@20", "NDCG@20"), ("recall@20", "Recall@20")):
            pt[f"Δ {name}"] = [_pm(a, b) for a, b in zip(paired[f"{metric}_diff_mean"], paired[f"{metric}_diff_std"])]
            if metric in ("ndcg@10", "recall@10"):
                pt[f"rel. {name}"] = [("—" if math.isnan(v) else f"{v:+.1f} %") for v in paired[f"{metric}_rel_pct"]]
        pt["s/epoch ÷ baseline"] = [("—" if math.isnan(v) else f"{v:.2f}×") for v in paired["train_s_per_epoch_ratio"]]
        lines += [pt.to_markdown(index=False), ""]

    stepped = summary[summary["steps"].notna()]
    if not stepped.empty:
        st = pd.DataFrame({
            "model": [label.rsplit("@L=", 1)[0] for label in stepped["label"]],  # the entry, e.g. REG4Rec or faithful
            "L": stepped["steps"].astype(int),
            "NDCG@10": [_pm(a, b) for a, b in zip(stepped["test_ndcg@10_mean"], stepped["test_ndcg@10_std"])],
            "Recall@10": [_pm(a, b) for a, b in zip(stepped["test_recall@10_mean"], stepped["test_recall@10_std"])],
        })
        lines += ["## Reasoning steps L", "", st.to_markdown(index=False), ""]
    if profile_notes:
        lines += ["## Per-model profile settings", ""] + [f"- {n}" for n in profile_notes] + [""]
    if failed:
        lines += ["## Failed cells (no result; rerun the command to retry)", ""] + [f"- {f}" for f in failed] + [""]
    return "\n".join(lines)


def plot_metric_bars(summary: pd.DataFrame, path: Path, metrics: Sequence[str] = ("ndcg@10", "recall@10")) -> Path:
    """Bar chart per metric, one bar per label, std over seeds as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 1.2 * len(summary)) * len(metrics) / 1.5, 4.2), squeeze=False)
    colors = ["tab:orange" if k == "ours" else "tab:blue" for k in summary["kind"]]
    for ax, metric in zip(axes[0], metrics):
        means = summary[f"test_{metric}_mean"].astype(float)
        stds = summary[f"test_{metric}_std"].astype(float).fillna(0.0)
        ax.bar(range(len(summary)), means, yerr=stds, capsize=4, color=colors)
        ax.set_xticks(range(len(summary)))
        ax.set_xticklabels(summary["label"], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"test {metric.replace('ndcg', 'NDCG').replace('recall', 'Recall')} (mean ± std)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_steps(summary: pd.DataFrame, path: Path, metric: str = "ndcg@10") -> Optional[Path]:
    """``metric`` against reasoning steps L, one line (with std band) per stepped model."""
    stepped = summary[summary["steps"].notna()]
    if stepped.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    stepped = stepped.assign(base=[l.rsplit("@L=", 1)[0] for l in stepped["label"]])
    for base, group in stepped.groupby("base", sort=False):
        group = group.sort_values("steps")
        steps = group["steps"].astype(int)
        means = group[f"test_{metric}_mean"].astype(float)
        stds = group[f"test_{metric}_std"].astype(float).fillna(0.0)
        ax.errorbar(steps, means, yerr=stds, marker="o", capsize=4, label=base)
    ax.set_xlabel("reasoning steps L")
    ax.set_ylabel(f"test {metric.replace('ndcg', 'NDCG')}")
    ax.set_xticks(sorted(stepped["steps"].astype(int).unique()))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
