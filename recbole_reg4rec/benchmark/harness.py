"""Plan a benchmark's cells, run the unfinished ones (one process each), write the reports.

A benchmark is ``models x seeds`` cells, run seed-major (every model with the first seed, then
the second...), so a run stopped early already holds comparable results. Each cell runs in a
child process (:mod:`.runner`), ``jobs`` of them at a time (``--jobs``: on a machine whose cores
or GPU one cell leaves idle; their timings then share the machine); finished cells are kept in the
output folder (:mod:`.store`) and skipped when the same command runs again. After each cell ``runs.csv`` is rebuilt; at the
end ``summary.md``, ``summary.csv``, ``paired.csv`` and the plots (:mod:`.report`).

Output folder::

    runs.csv  summary.csv  summary.md  paired.csv  metrics_bar.png  [steps_ndcg10.png]
    environment.json  environment.md  benchmark.json  benchmark.log
    cells/ requests/ configs/ logs/ saved/<cell>/
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml

from .environment import collect_environment, environment_markdown
from .protocol import PROTOCOL, ModelSpec, Profile, cell_settings, inference_label
from .report import (
    best_baseline,
    paired_differences,
    plot_metric_bars,
    plot_steps,
    runs_frame,
    summarize,
    summary_markdown,
)
from ..registry import model_property_files
from .store import ResultStore, cell_id, defaults_hash, spec_hash, write_json_atomic, write_text_atomic

#: Settings that do not change a cell's numbers (not part of its ``spec_hash``).
_NOT_HASHED = frozenset({"show_progress", "state", "checkpoint_dir", "gpu_id", "worker"})


@dataclass
class BenchmarkRequest:
    """Everything ``reg4rec.py benchmark`` was asked to do, validated."""

    dataset: str
    specs: List[ModelSpec]
    seeds: List[int]
    profile: Profile
    output: Path
    config_files: List[Path] = field(default_factory=list)
    overrides: Dict[str, Any] = field(default_factory=dict)
    ours: frozenset = frozenset()  # model names registered by recbole_reg4rec
    keep_checkpoints: bool = False
    report_only: bool = False  # write the reports from finished cells, run nothing
    verbose: bool = False  # cells print RecBole's log to the console too (always in logs/<cell>.log)
    jobs: int = 1  # cells run at the same time, each in its own process
    command: str = ""


@dataclass
class Cell:
    """One (model variant, seed) unit of work."""

    index: int
    spec: ModelSpec
    seed: int
    cid: str
    request: Dict[str, Any]


@dataclass
class BenchmarkOutcome:
    ran: List[str]
    skipped: List[str]
    failed: List[str]
    output: Path


def _hashable(settings: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _NOT_HASHED}


def plan_cells(req: BenchmarkRequest) -> List[Cell]:
    """The benchmark's cells, seed-major, each with the request its child process gets."""
    config_texts = [p.read_text(encoding="utf-8") for p in req.config_files]
    cells: List[Cell] = []
    for seed in req.seeds:
        for spec in req.specs:
            cid = cell_id(spec.label, seed)
            base, top = cell_settings(spec, req.profile, req.overrides, seed)
            base_file = req.output / "configs" / f"{cid}.yaml"
            kind = "ours" if spec.model in req.ours else "builtin"
            identity = {
                "label": spec.label, "model": spec.model, "dataset": req.dataset,
                "base": _hashable(base), "top": _hashable(top), "config_files": config_texts,
            }
            if spec.eval_steps:  # only then: cells of plain requests keep the identity they had
                identity["eval_steps"] = list(spec.eval_steps)
            if spec.eval_inference:
                identity["eval_inference"] = [dict(v) for v in spec.eval_inference]
            request = {
                "cell_id": cid,
                "label": spec.label,
                "model": spec.model,
                "kind": kind,
                "seed": seed,
                "variant": json.dumps(spec.settings_dict, sort_keys=True, default=str) if spec.settings else "",
                "dataset": req.dataset,
                "profile": req.profile.name,
                "spec_hash": spec_hash(identity),
                "defaults_hash": defaults_hash(model_property_files(spec.model)),
                "base_settings": base,
                "config_file_list": [str(base_file)] + [str(p) for p in req.config_files],
                # a folder per cell: RecBole names checkpoints by model and second, so cells run at once could collide
                "config_dict": {**top, "checkpoint_dir": str(req.output / "saved" / cid)},
                "log_file": str(req.output / "logs" / f"{cid}.log"),
                "console_log": req.verbose,
                "keep_checkpoint": req.keep_checkpoints,
                "eval_steps": list(spec.eval_steps),
                "eval_inference": [dict(v) for v in spec.eval_inference],
            }
            cells.append(Cell(index=len(cells) + 1, spec=spec, seed=seed, cid=cid, request=request))
    return cells


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the cell's process gets SIGKILL when the benchmark process dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_cell_process(cell: Cell, store: ResultStore) -> int:
    """Run ``cell`` in a child process; its result lands in ``store``. Returns the exit code."""
    write_json_atomic(store.request_path(cell.cid), cell.request)
    base_file = Path(cell.request["config_file_list"][0])
    base_file.parent.mkdir(parents=True, exist_ok=True)
    base_file.write_text(yaml.safe_dump(cell.request["base_settings"], sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "recbole_reg4rec.benchmark.runner", str(store.request_path(cell.cid)), str(store.cell_path(cell.cid))]
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    # the child imports this package even when it is not installed and runs from another folder
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return subprocess.run(cmd, preexec_fn=preexec, env=env).returncode


class _Log:
    """Progress lines to stdout and to ``benchmark.log``."""

    def __init__(self, path: Path, echo: Callable[[str], None]) -> None:
        self.path, self.echo = path, echo
        self._lock = threading.Lock()  # cells run at once report from their own threads

    def __call__(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._lock:
            self.echo(message)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{stamp} {message}\n")


def run_benchmark(req: BenchmarkRequest, echo: Callable[[str], None] = lambda m: print(m, flush=True)) -> BenchmarkOutcome:
    """Run every unfinished cell of ``req`` and write the reports (see the module docstring)."""
    req.output.mkdir(parents=True, exist_ok=True)
    log = _Log(req.output / "benchmark.log", echo)
    store = ResultStore(req.output)
    cells = plan_cells(req)
    env = collect_environment(req.command)
    write_json_atomic(req.output / "environment.json", env)
    write_text_atomic(req.output / "environment.md", environment_markdown(env))
    write_json_atomic(req.output / "benchmark.json", {
        "command": req.command,
        "dataset": req.dataset,
        "seeds": req.seeds,
        "profile": {"name": req.profile.name, "path": str(req.profile.path), "shared": req.profile.shared, "models": req.profile.models},
        "protocol": PROTOCOL,
        "config_files": [str(p) for p in req.config_files],
        "overrides": req.overrides,
        "models": [{"label": s.label, "model": s.model, "settings": s.settings_dict, "eval_steps": list(s.eval_steps),
                    "eval_inference": [dict(v) for v in s.eval_inference]} for s in req.specs],
        "cells": [c.cid for c in cells],
    })

    log(f"=== {req.command}")
    log(f"benchmark: {len(req.specs)} model(s) x {len(req.seeds)} seed(s) = {len(cells)} cells on {req.dataset}, "
        f"profile {req.profile.name} ({req.profile.path}), output {req.output}")
    for model in dict.fromkeys(s.model for s in req.specs):
        if req.profile.models.get(model):
            log(f"profile {req.profile.name}: per-model settings for {model}: {req.profile.models[model]}")
    if req.overrides:
        log(f"overrides for every model: {req.overrides}")
    for spec in req.specs:
        if spec.settings:
            log(f"variant {spec.label}: {spec.model} with {spec.settings_dict}")

    ran: List[str] = []
    skipped: List[str] = []
    failed: List[str] = []
    n = len(cells)

    def head(cell: Cell) -> str:
        return f"[{cell.index}/{n}] {cell.spec.label} seed {cell.seed}"

    to_run: List[Cell] = []
    for cell in cells:
        if _is_done(store, cell, req.report_only):
            record = store.load(cell.cid)
            other = "" if _is_done(store, cell) else " under other model defaults, reported as recorded"
            log(f"{head(cell)}: finished earlier ({record.get('finished_at')}{other}), skipped")
            skipped.append(cell.cid)
        elif req.report_only:
            log(f"{head(cell)}: not finished, not run (--report_only)")
            failed.append(f"{cell.spec.label} seed {cell.seed} (not run)")
        else:
            to_run.append(cell)

    def run_one(cell: Cell):
        if store.is_done(cell.cid, cell.request["spec_hash"]):  # same request, other defaults
            log(f"{head(cell)}: finished earlier under other model defaults (properties/ changed since), rerun")
        log(f"{head(cell)} ...")
        start = time.perf_counter()
        return run_cell_process(cell, store), time.perf_counter() - start

    # one thread per running cell: each only waits for its child process
    with ThreadPoolExecutor(max_workers=max(1, req.jobs)) as pool:
        futures = {pool.submit(run_one, cell): cell for cell in to_run}
        for future in as_completed(futures):
            cell = futures[future]
            rc, elapsed = future.result()
            _record_outcome(req, cells, store, cell, head(cell), rc, elapsed, ran, failed, log)
    write_reports(req, cells, store, failed, log)
    env["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(req.output / "environment.json", env)
    write_text_atomic(req.output / "environment.md", environment_markdown(env))
    log(f"benchmark finished: {len(ran)} run, {len(skipped)} skipped (done earlier), {len(failed)} failed")
    return BenchmarkOutcome(ran=ran, skipped=skipped, failed=failed, output=req.output)


def _record_outcome(req: BenchmarkRequest, cells: Sequence[Cell], store: ResultStore, cell: Cell, head: str, rc: int,
                    elapsed: float, ran: List[str], failed: List[str], log: Callable[[str], None]) -> None:
    """Log a finished cell's numbers (and rebuild ``runs.csv``) or its failure."""
    if rc == 0 and _is_done(store, cell):
        record = store.load(cell.cid)
        log(f"{head}: done in {elapsed:.1f} s — {record['epochs_trained']} epochs, "
            f"{record['train_s_per_epoch']:.2f} s/epoch, test NDCG@10 {record['test'].get('ndcg@10', float('nan')):.4f}, "
            f"Recall@10 {record['test'].get('recall@10', float('nan')):.4f}")
        ran.append(cell.cid)
        _write_runs(req, cells, store)
    else:
        where = cell.request["log_file"] if Path(cell.request["log_file"]).is_file() else "the error above"
        log(f"{head}: FAILED (exit code {rc}) after {elapsed:.1f} s; see {where}")
        failed.append(f"{cell.spec.label} seed {cell.seed}")


def _is_done(store: ResultStore, cell: Cell, report_only: bool = False) -> bool:
    """Finished under the current request (and model defaults: a run redoes a cell made under other
    defaults; ``--report_only``, which runs nothing, reports it as recorded)."""
    defaults = None if report_only else cell.request.get("defaults_hash")
    return store.is_done(cell.cid, cell.request["spec_hash"], defaults)


def _finished_records(cells: Sequence[Cell], store: ResultStore, report_only: bool = False) -> List[Dict[str, Any]]:
    return [store.load(c.cid) for c in cells if _is_done(store, c, report_only)]


def _write_runs(req: BenchmarkRequest, cells: Sequence[Cell], store: ResultStore):
    runs = runs_frame(_finished_records(cells, store, req.report_only))
    write_text_atomic(req.output / "runs.csv", runs.to_csv(index=False))
    return runs


def write_reports(req: BenchmarkRequest, cells: Sequence[Cell], store: ResultStore, failed: Sequence[str] = (), log: Optional[Callable[[str], None]] = None) -> None:
    """``runs.csv``, ``summary.csv``, ``summary.md``, ``paired.csv`` and the plots from the finished cells."""
    runs = _write_runs(req, cells, store)
    if runs.empty:
        if log:
            log("no finished cells: no summary written")
        return
    # each spec's row, then the rows of the reasoning-steps settings it was also evaluated at
    # (and the stage-1 model of two-stage cells, where recorded)
    order = [label for s in req.specs for label in [s.label, f"{s.label}[stage 1]"] + [f"{s.label}@L={L}" for L in s.eval_steps]
             + [inference_label(s.label, v) for v in s.eval_inference]]
    summary = summarize(runs, order)
    write_text_atomic(req.output / "summary.csv", summary.to_csv(index=False))
    baseline = best_baseline(runs)
    paired = paired_differences(runs, baseline) if baseline else None
    if paired is not None:
        write_text_atomic(req.output / "paired.csv", paired.to_csv(index=False))
    header = (
        f"# Benchmark on {req.dataset}: profile {req.profile.name}, seeds {', '.join(map(str, req.seeds))}\n\n"
        f"Protocol: leave-one-out by time (valid and test = each user's last two items), full ranking over all "
        f"items, early stopping on valid NDCG@10, CE loss without negative sampling. Command: `{req.command}`"
    )
    notes = [f"{m}: {req.profile.models[m]}" for m in dict.fromkeys(s.model for s in req.specs) if req.profile.models.get(m)]
    write_text_atomic(req.output / "summary.md", summary_markdown(summary, paired, baseline, header, notes, failed))
    plot_metric_bars(summary, req.output / "metrics_bar.png")
    plot_steps(summary, req.output / "steps_ndcg10.png")
    if log:
        log(f"wrote {req.output / 'summary.md'} ({len(runs)} runs, baseline {baseline})")
