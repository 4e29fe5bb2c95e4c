"""RecBole's DDP (``run_recbole.py --nproc=2``) on the CPU with the gloo backend.

Checks: the real entry point trains and tests; the gathered test metrics equal a
single-process evaluation of the same checkpoint (one checkpoint name for all ranks, loaded
after rank 0 wrote it); REG4Rec's two stages, alignment included, keep every rank on one model.
"""

from __future__ import annotations

import glob

import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

from ddp_helpers import free_port, run_ddp
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.quick_start import run
from recbole_reg4rec.registry import registered_models
from synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset


def _single_process_test_metrics(model_name, dataset_name, config_dict, checkpoint_file):
    config = Config(model=model_name, dataset=dataset_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    _, _, test_data = data_preparation(config, create_dataset(config))
    model = get_model(model_name)(config, test_data._dataset)
    state = load_checkpoint(checkpoint_file, map_location="cpu")
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    return dict(trainer.evaluate(test_data, load_best_model=False))


def test_run_nproc2_sasrec_on_gloo_matches_single_process_metrics(fast_sasrec_config, workdir):
    result = run("SASRec", "toy", config_dict=dict(fast_sasrec_config), nproc=2, ip="127.0.0.1", port=free_port())
    test = result["test_result"]
    assert set(test) == {f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hit") for k in (5, 10)}
    assert 0 < test["hit@10"] <= 1
    checkpoints = glob.glob(str(workdir / "saved" / "*.pth"))
    assert len(checkpoints) == 1  # rank 0 wrote it; every rank loaded that one file
    # 60 users split 30/30: the mean of both ranks' means is the single-process value
    single = _single_process_test_metrics("SASRec", "toy", fast_sasrec_config, checkpoints[0])
    assert test == pytest.approx(single, abs=2e-4)  # each rank rounds to 4 decimals first


#: REG4Rec, stage 1 and the alignment stage, in seconds on tiny data
TINY_REG4REC = {
    "load_col": SYNTHETIC_LOAD_COL,
    "epochs": 1,
    "train_batch_size": 128,
    "eval_batch_size": 100000,
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 2,
    "show_progress": False,
    "seed": 2020,
    "reproducibility": True,
    "metrics": ["Recall", "NDCG"],
    "topk": [5, 10],
    "valid_metric": "NDCG@10",
    "beam_size": 10,
    "crss_warmup_epochs": 0,
    "n_codebooks": 3,
    "codebook_size": 8,
    "mpq_feature_source": "side_info",
    "mpq_epochs": 5,
    "pars_enabled": True,
    "pars_epochs": 1,
    "pars_group_size": 4,
    "msra_horizon": 2,
}


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
    assert set(test) >= {"recall@10", "ndcg@10"} and 0 <= test["ndcg@10"] <= 1
    single = _single_process_test_metrics("REG4Rec", "toy", config, report["saved_model_file"])
    assert test == pytest.approx(single, abs=2e-4)
