"""RecBole's DDP (``run_recbole.py --nproc=2``) on the CPU with the gloo backend.

Checks: the real entry point trains and tests; the gathered test metrics equal a
single-process evaluation of the same checkpoint (one checkpoint name for all ranks, loaded
after rank 0 wrote it); REG4Rec's two stages, alignment included, keep every rank on one model.
"""

from __future__ import annotations

import glob

import pytest
import torch
from recbole.config import Config
from recbole.utils import get_trainer

from ddp_worker import free_port, run_ddp
from recbole_reg4rec.quick_start import load_data_and_model, run
from recbole_reg4rec.registry import registered_models
from synthetic import write_synthetic_dataset
from tiny_config import tiny_config


def _single_process_test_metrics(checkpoint_file):
    """Reload a DDP checkpoint in this one process (must not wait for the finished run's
    ranks) and evaluate it on the test split."""
    config, model, _, _, _, test_data = load_data_and_model(checkpoint_file)
    assert config["single_spec"] and "world_size" not in config.final_config_dict
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return dict(trainer.evaluate(test_data, load_best_model=False))


def test_run_nproc2_sasrec_on_gloo_matches_single_process_metrics(fast_sasrec_config, workdir):
    result = run("SASRec", "toy", config_dict=dict(fast_sasrec_config), nproc=2, ip="127.0.0.1", port=free_port())
    test = result["test_result"]
    assert set(test) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hit") for k in (5, 10)}
    assert 0 < test["hit@10"] <= 1
    checkpoints = glob.glob(str(workdir / "saved" / "*.pth"))
    assert len(checkpoints) == 1  # rank 0 wrote it; every rank loaded that one file
    # 60 users split 30/30: the mean of both ranks' means is the single-process value
    single = _single_process_test_metrics(checkpoints[0])
    assert test == pytest.approx(single, abs=2e-4)  # each rank rounds to 4 decimals first


#: REG4Rec, stage 1 and the alignment stage, in seconds on tiny data
TINY_REG4REC = tiny_config(
    use_gpu=False,
    epochs=1,
    train_batch_size=128,
    eval_batch_size=100000,
    n_heads=2,
    metrics=["Recall", "NDCG"],
    topk=[5, 10],
    valid_metric="NDCG@10",
    beam_size=10,
    crss_warmup_epochs=0,
    n_codebooks=3,
    codebook_size=8,
    mpq_feature_source="side_info",
    mpq_epochs=5,
    pars_enabled=True,
    pars_epochs=1,
    pars_group_size=4,
    msra_horizon=2,
)


def test_reg4rec_ddp_with_alignment_stage_keeps_ranks_in_sync(workdir):
    assert "REG4Rec" in registered_models()
    write_synthetic_dataset(workdir / "data", "toy")
    config = dict(TINY_REG4REC, data_path=str(workdir / "data"))
    report = run_ddp("REG4Rec", "toy", config)
    assert report["backend"] == "gloo" and report["device"] == "cpu"
    assert report["stage"] == 2  # the alignment stage ran
    # every rank ends with the same weights: gradients were averaged in both stages
    assert report["max_weight_gap"] < 1e-6
    test = report["test_result"]
    assert set(test) >= {"recall@10", "ndcg@10"} and test["ndcg@10"] > 0
    single = _single_process_test_metrics(report["saved_model_file"])
    assert test == pytest.approx(single, abs=2e-4)


def test_use_gpu_false_is_honoured():
    """RecBole 1.2.1 declares use_gpu but never reads it; with it off no GPU is listed."""
    config = Config(model="SASRec", dataset="ml-100k", config_dict={"use_gpu": False})
    assert config["gpu_id"] == "" and config["device"] == torch.device("cpu")


def test_ddp_on_too_few_gpus_is_a_clear_error(monkeypatch):
    """RecBole's own check is a bare AssertionError; ours says what to change, before any process group."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    settings = {"local_rank": 0, "nproc": 2, "world_size": 2, "offset": 0, "ip": "127.0.0.1", "port": "1", "gpu_id": "0"}
    with pytest.raises(ValueError, match=r"nproc = 2 DDP processes on CUDA need 2 GPUs, but gpu_id = '0' lists 1.*--use_gpu=False"):
        Config(model="SASRec", dataset="ml-100k", config_dict=settings)
    # the entry point finds it before spawning any worker (whose errors come wrapped in tracebacks)
    import torch.multiprocessing as mp

    monkeypatch.setattr(mp, "spawn", lambda *a, **k: pytest.fail("workers spawned"))
    with pytest.raises(ValueError, match="need 2 GPUs"):
        run("SASRec", "ml-100k", config_dict={"gpu_id": "0", "use_gpu": True}, nproc=2, port=free_port())
