"""Reproducibility: the same seed on the same machine gives identical numbers, for REG4Rec
(tokenizer, stage 1 and the alignment stage) and for the benchmark harness."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import pandas as pd
import torch

from kill_points import tiny_config
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.quick_start import run_recbole
from entry_points import load_entry_point
from synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]


def _reg4rec_run(root: Path, **extra):
    os.chdir(root)
    result = run_recbole(model="REG4Rec", dataset="tiny", config_dict=tiny_config(root, **extra))
    [best] = glob.glob(str(root / "saved" / "REG4Rec-*.pth"))
    return result, load_checkpoint(best)


def test_reg4rec_same_seed_same_metrics_and_weights(workdir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for name, extra in (("a", {}), ("b", {})):
            (workdir / name).mkdir()
            runs[name] = _reg4rec_run(workdir / name, **extra)  # each run builds its own token cache
    finally:
        torch.set_num_threads(threads)
    (first, first_best), (second, second_best) = runs["a"], runs["b"]
    assert first["test_result"] == second["test_result"]
    assert first["best_valid_result"] == second["best_valid_result"]
    assert torch.equal(first_best["state_dict"]["codes"], second_best["state_dict"]["codes"])  # same tokens
    for name, tensor in first_best["state_dict"].items():
        assert torch.equal(second_best["state_dict"][name], tensor), name
    assert first_best["epoch"] >= 1 and first_best["extra"]["stage"] in (1, 2)  # a trained, two-stage model


_PROFILE = """\
shared:
  MAX_ITEM_LIST_LENGTH: 10
  hidden_size: 16
  inner_size: 32
  n_layers: 1
  n_heads: 1
  train_batch_size: 128
  eval_batch_size: 256
  epochs: 1
  show_progress: False
"""


def _harness(root: Path, out: str) -> pd.DataFrame:
    cli = load_entry_point("reg4rec")
    argv = ["benchmark", "--dataset=toy", "--models=SASRec", "--seeds=1", f"--profile={root / 'tiny.yaml'}",
            f"--output={root / out}", f"--data_path={root / 'data'}",
            "--load_col={inter: [user_id, item_id, rating, timestamp]}", "--state=WARNING", "--use_gpu=False"]
    old_argv = sys.argv
    sys.argv = ["reg4rec.py"]
    try:
        assert cli.main(argv) == 0
    finally:
        sys.argv = old_argv
    return pd.read_csv(root / out / "runs.csv")


def test_benchmark_harness_same_seed_same_metric_columns(workdir):
    write_synthetic_dataset(workdir / "data", "toy", n_users=40, n_items=50, with_item_file=False)
    (workdir / "tiny.yaml").write_text(_PROFILE)
    first = _harness(workdir, "out1")
    second = _harness(workdir, "out2")
    metrics = [c for c in first.columns if c.startswith(("test_", "valid_")) and "@" in c]
    assert len(metrics) >= 8 and len(first) == 1 and first["epochs_trained"].tolist() == [1]
    pd.testing.assert_frame_equal(first[metrics], second[metrics], check_exact=True)
    assert first["config_hash"].tolist() == second["config_hash"].tolist()
    assert first["run_id"].tolist() != second["run_id"].tolist()  # two separate runs were compared
