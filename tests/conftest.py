"""Shared fixtures: every test runs in its own temporary working directory (RecBole writes
``./log``, ``./log_tensorboard`` and ``./saved`` relative to it) on tiny synthetic data."""

from __future__ import annotations

import os

import pytest

import recbole_reg4rec  # noqa: F401  (compat layer + registry, as users get it)
from synthetic import write_synthetic_dataset
from tiny_config import tiny_config

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one pytest-xdist worker per core: one torch thread each (and in the processes tests start),
    # or the workers' thread pools fight over the same cores
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run the test inside ``tmp_path`` with a clean command line (RecBole parses sys.argv)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pytest"])
    return tmp_path


@pytest.fixture
def toy_data(workdir):
    """A 60-user / 100-item synthetic dataset named ``toy`` under ``workdir/data``."""
    write_synthetic_dataset(workdir / "data", "toy")
    return workdir / "data"


@pytest.fixture
def fast_sasrec_config(toy_data):
    """``config_dict`` for a seconds-long SASRec run on ``toy``."""
    return tiny_config(
        toy_data,
        epochs=2,
        train_batch_size=256,
        eval_batch_size=256,
        n_heads=1,
        train_neg_sample_args=None,
        use_gpu=False,  # tests pin the CPU, subprocesses too (GPU paths: scripts/gpu_check.sh)
        metrics=["Recall", "NDCG", "MRR", "Hit"],
        topk=[5, 10],
        valid_metric="NDCG@10",
    )
