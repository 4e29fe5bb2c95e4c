"""Reproducibility: the same seed on the same machine gives identical numbers for REG4Rec (tokenizer,
stage 1 and the alignment stage). The benchmark harness's own check is in
tests/benchmark/test_benchmark_harness.py (a redone cell reproduces the lost one's metrics)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import torch

from kill_points import tiny_config
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.quick_start import run_recbole



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
