"""Benchmark rows of one trained cell under other inference settings (``--inference``), e.g. the
same model ranked by its item-ID head alone."""

from __future__ import annotations

import pytest

from entry_points import load_entry_point
from recbole_reg4rec.benchmark.protocol import BenchmarkError, inference_label, parse_inference
from recbole_reg4rec.benchmark.report import runs_frame
from recbole_reg4rec.benchmark.runner import check_inference_variants, run_cell
from recbole_reg4rec.benchmark import request as benchmark_request
from synthetic import write_synthetic_dataset
from tiny_config import REG4REC_STAGE1

reg4rec_cli = load_entry_point("reg4rec")


def make_request(argv):
    return benchmark_request.make_request(reg4rec_cli.parse_args(["benchmark", *argv]))


def test_inference_variants_parse_and_reach_the_request():
    assert parse_inference("score_mode=id; score_mode=blend,item_fusion_weight=2") == [
        (("score_mode", "id"),), (("score_mode", "blend"), ("item_fusion_weight", 2)),
    ]
    assert inference_label("REG4Rec", {"score_mode": "id"}) == "REG4Rec[score_mode=id]"
    request = make_request(["--models=REG4Rec,SASRec", "--inference=score_mode=id", "--seeds=1"])
    assert [s.eval_inference for s in request.specs] == [((("score_mode", "id"),),), ()]
    with pytest.raises(BenchmarkError, match="expected key=value"):
        parse_inference("score_mode")
    with pytest.raises(BenchmarkError, match="--inference needs a model of --steps_models"):
        make_request(["--models=SASRec", "--inference=score_mode=id"])


def test_a_bad_variant_is_refused_before_training():
    class NoSettings:
        pass

    with pytest.raises(ValueError, match="NoSettings has no inference settings"):
        check_inference_variants(NoSettings(), [{"score_mode": "id"}])


def test_one_trained_model_gives_its_id_head_row(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    request = {
        "cell_id": "REG4Rec__seed2020", "label": "REG4Rec", "model": "REG4Rec", "kind": "ours", "seed": 2020,
        "dataset": "toy", "eval_inference": [{"score_mode": "id"}, {"score_mode": "fused"}],
        "config_dict": {**REG4REC_STAGE1, "epochs": 1, "data_path": str(workdir / "data"), "use_gpu": False,
                        "score_mode": "fused", "item_fusion_weight": 4.0,
                        "checkpoint_dir": str(workdir / "saved"), "state": "WARNING"},
    }
    record = run_cell(request)
    assert record["epochs_trained"] == 1 and record["inference_settings"]["score_mode"] == "fused"
    by_mode = {r["settings"]["score_mode"]: r for r in record["inference_results"]}
    assert by_mode["fused"]["test"] == pytest.approx(record["test"])  # the cell's own setting: same numbers
    assert by_mode["id"]["test"] != by_mode["fused"]["test"]
    runs = runs_frame([record])
    assert list(runs["label"]) == ["REG4Rec", "REG4Rec[score_mode=fused]", "REG4Rec[score_mode=id]"]
    assert runs.set_index("label").loc["REG4Rec[score_mode=id]", "test_ndcg@10"] == by_mode["id"]["test"]["ndcg@10"]


def test_a_two_stage_cell_records_the_stage1_model_it_started_from(workdir):
    # no alignment update can change the weights (learning rate 0), so stage 2 ties stage 1 on validation,
    # the stage-1 model stays the tested one, and its recorded test metrics must be the cell's own
    write_synthetic_dataset(workdir / "data", "toy")
    request = {
        "cell_id": "REG4Rec__seed2020", "label": "REG4Rec", "model": "REG4Rec", "kind": "ours", "seed": 2020,
        "dataset": "toy",
        "config_dict": {**REG4REC_STAGE1, "epochs": 1, "pars_enabled": True, "pars_epochs": 1,
                        "pars_learning_rate": 0.0, "data_path": str(workdir / "data"), "use_gpu": False,
                        "checkpoint_dir": str(workdir / "saved"), "state": "WARNING"},
    }
    record = run_cell(request)
    stage1 = record["stage1_results"]
    assert [stage for _, stage, _ in record["epoch_times"]] == [1, 2] and stage1["first_stage2_epoch"] == 1
    assert record["stage2_selected"] is False
    assert stage1["test"] == pytest.approx(record["test"]) and stage1["valid"] == pytest.approx(record["valid"])
    runs = runs_frame([record]).set_index("label")
    assert list(runs.index) == ["REG4Rec", "REG4Rec[stage 1]"]
    assert runs.loc["REG4Rec[stage 1]", "test_ndcg@10"] == stage1["test"]["ndcg@10"]
    assert runs.loc["REG4Rec", "stage2_selected"] == False  # noqa: E712 (a numpy bool in the frame)


def test_a_one_stage_cell_has_no_stage1_row(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    request = {
        "cell_id": "REG4Rec__seed2020", "label": "REG4Rec", "model": "REG4Rec", "kind": "ours", "seed": 2020,
        "dataset": "toy",
        "config_dict": {**REG4REC_STAGE1, "epochs": 1, "data_path": str(workdir / "data"), "use_gpu": False,
                        "checkpoint_dir": str(workdir / "saved"), "state": "WARNING"},
    }
    record = run_cell(request)
    assert "stage1_results" not in record and "stage2_selected" not in record
    assert list(runs_frame([record])["label"]) == ["REG4Rec"]


def test_measuring_the_stage1_model_leaves_every_random_state_as_it_was():
    """The stage-1 test pass sits inside fit(): whatever it draws must not shift what stage 2 draws next."""
    import random

    import numpy as np
    import torch

    from recbole_reg4rec.benchmark.runner import _Stage1Recorder

    class Trainer:
        best_valid_result = {"ndcg@10": 0.5}

        def evaluate(self, data, load_best_model, show_progress):
            random.random(), np.random.rand(), torch.rand(3)  # an evaluation that consumes randomness
            return {"ndcg@10": 0.25}

    def draws():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = draws()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    result = _Stage1Recorder._measure(Trainer(), None, False, first_epoch=7)
    assert draws() == expected
    assert result == {"first_stage2_epoch": 7, "valid": {"ndcg@10": 0.5}, "test": {"ndcg@10": 0.25}}
