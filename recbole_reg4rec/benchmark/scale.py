"""Scale benchmark: evaluation, training and tokenizer cost of REG4Rec, TIGER and SASRec against
the catalogue size N, on synthetic datasets (default N = 2k, 20k, 100k).

Everything runs in one process on the same users with one torch thread; the machine may be shared,
so the models are measured *interleaved* (each evaluation round and each training batch runs every
model in turn) and the median over rounds is reported. Peak memory of an evaluation is the largest
resident set size sampled (every 2 ms) during the call, minus the resident size just before it.

Usage::

    python reg4rec.py scale --items 2000 20000 100000 --output results/scale

Writes ``scale.csv``, ``scale.md`` (table, hardware, date, targets) and ``scale.png`` (log-log
eval seconds and peak memory against N) into ``--output``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import gc
import math
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

MODELS = ("SASRec", "REG4Rec", "TIGER")
SHARED = {
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 64,
    "inner_size": 128,
    "n_layers": 1,
    "n_heads": 2,
    "train_batch_size": 256,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "show_progress": False,
    "reproducibility": True,
    "use_gpu": False,
    "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "genre", "emb"]},
}


# ---- data --------------------------------------------------------------------------------------
def write_dataset(root: Path, name: str, n_items: int, n_users: int, per_user: int, seed: int = 0) -> None:
    """Atomic files of a synthetic catalogue: items in 50 clusters (side information = a genre token
    and a noisy cluster embedding, for every item), users walking through one favourite cluster with
    popularity skew; most items of a large catalogue get no interaction (side information only)."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    n_clusters, dim = min(50, max(1, n_items // 20)), 16
    cluster = rng.integers(0, n_clusters, n_items)
    centroids = rng.normal(size=(n_clusters, dim))
    emb = centroids[cluster] + 0.5 * rng.normal(size=(n_items, dim))
    members = [m for m in (np.flatnonzero(cluster == c) for c in range(n_clusters)) if m.size]
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        pool = members[rng.integers(0, len(members))]
        pop = 1.0 / np.arange(1, pool.size + 1) ** 0.8
        items = rng.choice(pool, size=per_user, p=pop / pop.sum())
        noise = rng.random(per_user) < 0.2
        items[noise] = rng.integers(0, n_items, int(noise.sum()))
        lines += [f"u{u}\ti{i}\t{t}" for t, i in enumerate(items.tolist())]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    rows = ["item_id:token\tgenre:token\temb:float_seq"]
    rows += [f"i{i}\tg{cluster[i]}\t{' '.join(f'{x:.3f}' for x in emb[i])}" for i in range(n_items)]
    (folder / f"{name}.item").write_text("\n".join(rows) + "\n")


# ---- measurement helpers -------------------------------------------------------------------------
def _trim() -> None:
    """Return freed heap memory to the OS so the next resident-size baseline is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class PeakRSS:
    """Largest resident set size (bytes) sampled every 2 ms inside a ``with`` block."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = self.start = 0

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


@dataclasses.dataclass
class Built:
    name: str
    config: object
    model: object
    train: object
    test_batch: object
    tokenize_s: float = float("nan")
    unique_share: float = float("nan")
    largest_group: float = float("nan")


def build(name: str, data_path: Path, dataset: str, seed: int, eval_users: int, extra: Dict) -> Built:
    """Config, data, tokens (timed, uncached) and an untrained model for one model name."""
    import torch

    from ..run import build_model, load_data, make_config

    cfg = dict(SHARED, data_path=str(data_path), seed=seed, eval_batch_size=eval_users, **extra)
    if name != "SASRec":
        # time the reasoning (beam search, CORP): `auto` would rank an untrained model by its ID head alone
        cfg = {"score_mode": "fused", **cfg}
        cfg["tokenizer_cache_dir"] = str(data_path / "tokens")
        cfg["crss_warmup_epochs"] = 0  # time training with CRSS order sampling on (past the warm-up)
    config = make_config(name, dataset, None, cfg)
    _, train, _, test = load_data(config)
    built = Built(name, config, None, train, next(iter(test))[0])
    if name != "SASRec":
        from ..tokenizer.build import build_semantic_ids_with_report

        t0 = time.perf_counter()
        _, report = build_semantic_ids_with_report(config, train._dataset)  # written to the cache
        built.tokenize_s = time.perf_counter() - t0
        built.unique_share, built.largest_group = report.unique_share, report.largest_collision
    built.model, _ = build_model(config, train)
    torch.set_num_threads(1)
    return built


def time_training(models: Sequence[Built], n_batches: int) -> Dict[str, float]:
    """Seconds per training batch, interleaved: every model's step on its own batch i in turn.
    REG4Rec also gets an alignment (PARS) step per batch (``REG4Rec (alignment)``)."""
    import copy

    import torch

    from ..alignment import attach_future_items
    from ..alignment.pars import AlignmentSettings, alignment_loss

    steps = {}
    for b in models:
        opt = torch.optim.Adam(b.model.parameters(), lr=1e-3)
        if b.name == "REG4Rec":
            settings = AlignmentSettings.from_config(b.config)
            attach_future_items(b.train._dataset, settings.msra_horizon)
            reference = copy.deepcopy(b.model).eval()

            def align(batch, m=b.model, o=opt, ref=reference, s=settings):
                o.zero_grad()
                alignment_loss(m, ref, batch, s)["loss"].backward()
                o.step()

            steps["REG4Rec (alignment)"] = (b, align)

        def supervised(batch, m=b.model, o=opt):
            o.zero_grad()
            m.calculate_loss(batch).backward()
            o.step()

        steps[b.name] = (b, supervised)
    iters = {name: iter(b.train) for name, (b, _) in steps.items()}
    spent: Dict[str, List[float]] = {name: [] for name in steps}
    for b, _ in steps.values():
        b.model.train()  # an epoch starts (REG4Rec counts epochs: with warm-up 0, CRSS order sampling is on)
    for _ in range(n_batches):
        for name, (b, step) in steps.items():
            batch = next(iters[name])
            torch.nn.Module.train(b.model, True)
            t0 = time.perf_counter()
            step(batch)
            spent[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in spent.items()}


def time_evaluation(models: Sequence[Built], rounds: int) -> Dict[str, Dict[str, float]]:
    """Full-sort scores + top-10 of the test users, interleaved over ``rounds``: median seconds,
    peak extra and peak total resident memory (MB) of each model's call."""
    import torch

    out: Dict[str, Dict[str, List[float]]] = {b.name: {"s": [], "extra": [], "rss": []} for b in models}
    for r in range(rounds):
        for b in (models if r % 2 == 0 else list(reversed(models))):
            b.model.eval()
            _trim()
            with torch.no_grad(), PeakRSS() as mem:
                t0 = time.perf_counter()
                scores = b.model.full_sort_predict(b.test_batch)
                scores.topk(10, dim=1)
                out[b.name]["s"].append(time.perf_counter() - t0)
            del scores
            out[b.name]["extra"].append((mem.peak - mem.start) / 2 ** 20)
            out[b.name]["rss"].append(mem.peak / 2 ** 20)
    return {name: {k: statistics.median(v) for k, v in d.items()} for name, d in out.items()}


def parity_with_dense(reg: Built, n_users: int = 64) -> bool:
    """The grouped (sparse) beam and the dense reference give the same top-10 and scores."""
    import torch

    from ..model.beam_search import corp_beam_search

    model = reg.model.eval()
    inter = reg.test_batch[torch.arange(min(n_users, reg.test_batch.length))]
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        cfg = model.beam_config()
        prior = model.item_log_prior(ctx)
        step = model.step_function(ctx)
        b = ctx.last.size(0)
        sparse = corp_beam_search(step, model.catalogue(), b, cfg, prior)
        dense = corp_beam_search(step, model.catalogue(), b, dataclasses.replace(cfg, candidates="dense"), prior)
    same = torch.equal(sparse.tokens, dense.tokens) and torch.equal(sparse.codebooks, dense.codebooks)
    fin = torch.isfinite(dense.item_scores)
    same = same and torch.equal(fin, torch.isfinite(sparse.item_scores))
    return bool(same and torch.allclose(sparse.item_scores[fin], dense.item_scores[fin], rtol=1e-5, atol=1e-5))


# ---- report --------------------------------------------------------------------------------------
def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0]) if len(xs) > 1 else float("nan")


def hardware() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} thread"


def write_report(rows: List[Dict], out: Path, args, notes: List[str]) -> None:
    import csv

    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0].keys())
    with open(out / "scale.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    by = {(r["n_items"], r["model"]): r for r in rows}
    sizes = sorted({r["n_items"] for r in rows})
    lines = [
        "# Scale benchmark: REG4Rec, TIGER and SASRec against the catalogue size",
        "",
        f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. Hardware: {hardware()}.",
        f"Command: `python reg4rec.py {' '.join(args.argv)}`",
        "",
        f"Synthetic data: {args.users} users x {args.per_user} interactions, every item has side information; "
        f"hidden 64, 1 layer, history 20, untrained models (evaluation cost does not need trained weights), "
        f"{args.eval_users} test users scored over all items + top-10. Models measured interleaved in one process "
        f"(median of {args.rounds} evaluation rounds, {args.train_batches} training batches of 256); the machine is "
        f"shared with other jobs, so single numbers are noisy. Memory: peak resident size during the call minus "
        f"the size before it (extra) and the peak itself (total).",
        "",
        "| N items | model | eval s | x SASRec | extra MB | total MB | x SASRec total | train s/batch | x SASRec | tokenizer s | unique sets | largest group |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        base = by[(n, "SASRec")]
        for name in [m for m in (*MODELS, "REG4Rec (alignment)") if (n, m) in by]:
            r = by[(n, name)]
            ratio = lambda k: f"{r[k] / base[k]:.1f}" if base.get(k) and r.get(k) == r.get(k) else "-"  # noqa: E731
            fmt = lambda k, spec: format(r[k], spec) if r.get(k) == r.get(k) else "-"  # noqa: E731 (nan -> -)
            unique = "-" if r["unique_share"] != r["unique_share"] else f"{100 * r['unique_share']:.2f} %"
            lines.append(
                f"| {n:,} | {name} | {fmt('eval_s', '.3f')} | {ratio('eval_s')} | {fmt('eval_extra_mb', '.0f')} | "
                f"{fmt('eval_total_mb', '.0f')} | {ratio('eval_total_mb')} | {fmt('train_s_per_batch', '.3f')} | "
                f"{ratio('train_s_per_batch')} | {fmt('tokenize_s', '.1f')} | "
                f"{unique} | "
                f"{fmt('largest_group', '.0f')} |"
            )
    reg = [by[(n, "REG4Rec")]["eval_s"] for n in sizes]
    lines += ["", f"Log-log slope of REG4Rec eval seconds over N ({sizes[0]:,} -> {sizes[-1]:,}): {_slope(sizes, reg):.2f}."]
    lines += [""] + notes
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name in MODELS:
            xs = [n for n in sizes if (n, name) in by]
            axes[0].loglog(xs, [by[(n, name)]["eval_s"] for n in xs], "o-", label=name)
            axes[1].loglog(xs, [max(by[(n, name)]["eval_total_mb"], 1) for n in xs], "o-", label=name)
        axes[0].set(xlabel="items N", ylabel=f"eval seconds ({args.eval_users} users)", title="evaluation time")
        axes[1].set(xlabel="items N", ylabel="peak resident MB during eval", title="evaluation peak memory")
        for ax in axes:
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "scale.png", dpi=110)
    except ImportError:
        notes.append("matplotlib missing: no plot written")


def scale_command(args) -> List[Dict]:
    """``reg4rec.py scale``: measure every N of ``args.items``, write the report; returns the rows."""
    import torch

    import recbole_reg4rec  # noqa: F401  (registry + compat layer)

    from ..run import parse_overrides

    torch.set_num_threads(1)
    extra = parse_overrides("--" + s for s in args.set)
    rows, notes = [], []
    for n in args.items:
        with tempfile.TemporaryDirectory() as tmp:
            name = f"scale{n}"
            write_dataset(Path(tmp), name, n, args.users, args.per_user, seed=0)
            models = [build(m, Path(tmp), name, args.seed, args.eval_users, extra) for m in args.models]
            train = time_training(models, args.train_batches) if args.train_batches else {}
            evals = time_evaluation(models, args.rounds)
            for b in models:
                names = [b.name] + (["REG4Rec (alignment)"] if "REG4Rec (alignment)" in train and b.name == "REG4Rec" else [])
                for row_name in names:
                    e = evals[b.name] if row_name == b.name else {"s": math.nan, "extra": math.nan, "rss": math.nan}
                    rows.append({
                        "n_items": n, "model": row_name, "eval_users": int(b.test_batch.length),
                        "eval_s": e["s"], "eval_extra_mb": e["extra"], "eval_total_mb": e["rss"],
                        "train_s_per_batch": train.get(row_name, math.nan),
                        "tokenize_s": b.tokenize_s if row_name == b.name else math.nan,
                        "unique_share": b.unique_share if row_name == b.name else math.nan,
                        "largest_group": b.largest_group if row_name == b.name else math.nan,
                        "n_items_dataset": int(b.model.n_items - 1),
                    })
            reg = next((b for b in models if b.name == "REG4Rec"), None)
            if reg is not None and n == min(args.items):
                same = parity_with_dense(reg)
                notes.append(f"Sparse vs dense beam bookkeeping at N = {n:,} (64 test users): "
                             f"{'identical' if same else 'DIFFERENT'} paths, tokens and item scores.")
            print(f"done N={n}", {r["model"]: round(r["eval_s"], 3) for r in rows if r["n_items"] == n}, flush=True)
            del models
            _trim()
        write_report(rows, Path(args.output), args, notes)
    return rows
