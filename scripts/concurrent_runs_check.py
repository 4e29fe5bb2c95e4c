"""Runs sharing one folder: N runs started in the same second keep their own checkpoints and logs.

RecBole names a run's checkpoint ``<Model>-<time to the second>.pth`` and its log file after the
time and a hash of the config, so runs started in the same second used to overwrite each other's
best model and then test another run's weights. This check starts ``--runs`` processes at one
wall-clock instant, all in one working directory and one ``checkpoint_dir`` (seeds ``--seed``,
``--seed + 1``, ...), and then runs each seed alone in a folder of its own (its unshared
reference). It reports, per run, its checkpoint and whether its final test result and best
weights equal its lone run's, and counts the checkpoints, log files and tensorboard folders.

    python scripts/concurrent_runs_check.py --runs 8 --output /tmp/concurrent

``--same_stamp`` (the default) pins RecBole's time stamp to one value in every process, so the
names would collide even when the processes reach their trainers in different seconds: the
worst case, not a lucky timing. Exit status 0 when every run kept its own files and results.
Seconds-long runs on a 30-user synthetic set (:mod:`recbole_reg4rec.utils.synthetic`), the sizes
of the crash-safety tests; SASRec (default) or REG4Rec (``--model REG4Rec``, both stages).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # recbole_reg4rec, when the package is not installed

#: RecBole's time stamp in every run when ``--same_stamp`` is on
PINNED_STAMP = "Jan-01-2026_00-00-00"

#: a seconds-long run (REG4Rec: both stages) on the synthetic set ``tiny``
TINY_RUN: Dict = {
    "MAX_ITEM_LIST_LENGTH": 8,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 2,
    "show_progress": False,
    "reproducibility": True,
    "use_gpu": False,
    "epochs": 3,
    "stopping_step": 10,
    "train_batch_size": 64,
    "eval_batch_size": 100000,
    "metrics": ["Recall", "NDCG"],
    "topk": [5],
    "valid_metric": "NDCG@5",
    "state": "WARNING",
    # REG4Rec: tokenizer, decoding and alignment at tiny sizes
    "beam_size": 10,
    "crss_warmup_epochs": 1,
    "n_codebooks": 3,
    "codebook_size": 4,
    "mpq_feature_source": "side_info",
    "feature_dim": 8,
    "mpq_expert_hidden": 16,
    "mpq_latent_dim": 8,
    "mpq_epochs": 3,
    "pars_epochs": 2,
    "pars_group_size": 4,
    "msra_horizon": 2,
}


def run_config(root: Path, model: str, seed: int) -> Dict:
    """:data:`TINY_RUN` with ``seed`` on the synthetic set written under ``root``."""
    from recbole_reg4rec.utils.synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset

    write_synthetic_dataset(root / "data", "tiny", n_users=30, n_items=24, n_clusters=3)
    config = dict(TINY_RUN, load_col=SYNTHETIC_LOAD_COL, seed=seed, data_path=str(root / "data"),
                  tokenizer_cache_dir=str(root / "tokens"), checkpoint_dir=str(root / "saved"))
    if model == "SASRec":
        config["train_neg_sample_args"] = None  # (SASRec ignores the REG4Rec settings)
    return config


def worker(root: Path, model: str, config_file: Path, same_stamp: bool) -> Dict:
    """One run in ``root`` (its working directory). Once imported, it prints ``ready`` and starts
    at the time the launcher then sends on stdin. Returns what it kept."""
    import torch

    torch.set_num_threads(1)  # the same float arithmetic as its lone run
    import recbole.trainer.trainer as recbole_trainer

    from recbole_reg4rec.quick_start import run_recbole
    from recbole_reg4rec.run import argv_cleared

    if same_stamp:
        recbole_trainer.get_local_time = lambda: PINNED_STAMP
    os.chdir(root)
    config = json.loads(config_file.read_text())
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    captured = {}
    original_init = recbole_trainer.Trainer.__init__

    def init(self, *args, **kwargs):  # the file this run's trainer chose
        original_init(self, *args, **kwargs)
        captured["trainer"] = self

    recbole_trainer.Trainer.__init__ = init
    with argv_cleared():  # run_recbole reads --key=value from the command line, as RecBole's; ours are not config
        result = run_recbole(model=model, dataset="tiny", config_dict=config)
    trainer = captured["trainer"]
    return {
        "seed": config["seed"],
        "started": started,
        "run_id": trainer.run_id,
        "checkpoint": os.path.abspath(trainer.saved_model_file),
        "test_result": dict(result["test_result"]),
    }


def _launch(jobs: List[tuple], model: str, same_stamp: bool) -> List[Dict]:
    """Run ``(root, seed)`` jobs as parallel processes that all start at one instant."""
    procs, stderr_files = [], []
    for root, seed in jobs:
        config_file = root / f"config-seed{seed}.json"  # data written here, once, before any run starts
        config_file.write_text(json.dumps(run_config(root, model, seed)))
        stderr_files.append(open(root / f"stderr-seed{seed}.txt", "w"))
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", "--root", str(root), "--model", model, "--config", str(config_file)]
            + (["--same_stamp"] if same_stamp else ["--no_same_stamp"]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr_files[-1],
            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        ))
    for (_, seed), proc in zip(jobs, procs):  # every process has imported torch and RecBole
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"run with seed {seed} did not start ({line!r}); see its stderr-seed{seed}.txt")
    start_at = time.time() + 0.5
    reports = []
    for proc in procs:
        proc.stdin.write(f"{start_at!r}\n")
        proc.stdin.flush()
    for (_, seed), proc in zip(jobs, procs):
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"run with seed {seed} failed; see its stderr-seed{seed}.txt")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    for f in stderr_files:
        f.close()
    return reports


def check(output: Path, runs: int = 8, model: str = "SASRec", seed: int = 2020, same_stamp: bool = True) -> Dict:
    """Start ``runs`` runs together in ``output/shared``, then each alone; compare. Returns a summary."""
    import torch

    from recbole_reg4rec.compat.checkpoints import load_checkpoint

    seeds = [seed + i for i in range(runs)]
    shared = output / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    together = _launch([(shared, s) for s in seeds], model, same_stamp)
    folders = [output / f"alone-seed{s}" for s in seeds]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    alone = {r["seed"]: r for r in _launch(list(zip(folders, seeds)), model, same_stamp)}

    rows, ok = [], True
    for report in together:
        lone = alone[report["seed"]]
        mine, reference = load_checkpoint(report["checkpoint"]), load_checkpoint(lone["checkpoint"])
        same_weights = mine["state_dict"].keys() == reference["state_dict"].keys() and all(
            torch.equal(mine["state_dict"][k], reference["state_dict"][k]) for k in reference["state_dict"]
        )
        same_test = report["test_result"] == lone["test_result"]
        own_file = mine.get("run_id") == report["run_id"] and mine["config"]["final"]["seed"] == report["seed"]
        ok &= same_weights and same_test and own_file
        rows.append({**report, "same_test_as_alone": same_test, "same_weights_as_alone": same_weights,
                     "file_is_its_own": own_file})
    checkpoints = {r["checkpoint"] for r in together}
    logs = glob.glob(str(shared / "log" / model / "*.log"))
    boards = glob.glob(str(shared / "log_tensorboard" / "*"))
    starts = [r["started"] for r in together]
    summary = {
        "runs": runs,
        "model": model,
        "start_spread_s": max(starts) - min(starts),
        "pinned_stamp": PINNED_STAMP if same_stamp else None,
        "distinct_checkpoints": len(checkpoints),
        "checkpoint_files_in_folder": len(glob.glob(str(shared / "saved" / "*.pth"))),
        "distinct_log_files": len(logs),
        "distinct_tensorboard_dirs": len(boards),
        "rows": rows,
    }
    summary["ok"] = bool(ok and len(checkpoints) == runs == summary["checkpoint_files_in_folder"]
                         and len(logs) == runs and len(boards) == runs)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--model", default="SASRec", choices=["SASRec", "REG4Rec"])
    parser.add_argument("--seed", type=int, default=2020, help="first seed; run i uses seed + i")
    parser.add_argument("--output", type=Path, default=Path("concurrent_runs_check"))
    parser.add_argument("--same_stamp", dest="same_stamp", action="store_true", default=True)
    parser.add_argument("--no_same_stamp", dest="same_stamp", action="store_false",
                        help="use the real clock (runs may then land in different seconds)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.root, args.model, args.config, args.same_stamp)))
        return 0
    summary = check(args.output.resolve(), args.runs, args.model, args.seed, args.same_stamp)
    print(f"{summary['runs']} {summary['model']} runs started within {summary['start_spread_s']:.3f} s in one folder"
          + (f" (RecBole time stamp pinned to {PINNED_STAMP})" if summary["pinned_stamp"] else ""))
    for row in summary["rows"]:
        print(f"  seed {row['seed']}: {os.path.basename(row['checkpoint'])}  test {row['test_result']}  "
              f"same test as alone: {row['same_test_as_alone']}, same weights: {row['same_weights_as_alone']}, "
              f"file is its own: {row['file_is_its_own']}")
    print(f"distinct checkpoints {summary['distinct_checkpoints']} (files in folder "
          f"{summary['checkpoint_files_in_folder']}), log files {summary['distinct_log_files']}, "
          f"tensorboard folders {summary['distinct_tensorboard_dirs']}: {'OK' if summary['ok'] else 'FAILED'}")
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
