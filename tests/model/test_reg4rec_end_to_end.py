"""REG4Rec through RecBole's own entry points on tiny synthetic data, with the real tokenizer."""

from __future__ import annotations

import glob
import json

import pytest
import torch

from recbole_reg4rec.quick_start import load_data_and_model, run_recbole
from entry_points import load_entry_point
from synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset

FAST = {
    "load_col": SYNTHETIC_LOAD_COL,
    "epochs": 2,
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
    "metrics": ["Recall", "NDCG", "MRR", "Hit"],
    "topk": [5, 10],
    "valid_metric": "NDCG@10",
    "beam_size": 20,
    "crss_warmup_epochs": 1,
    # tokenizer: small and fast
    "n_codebooks": 3,
    "codebook_size": 8,
    "mpq_feature_source": "side_info",
    "mpq_epochs": 5,
    "pars_enabled": False,  # first stage only (the alignment stage has its own tests)
}


@pytest.fixture
def toy_cfg(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    return dict(FAST, data_path=str(workdir / "data"))


def test_run_recbole_trains_evaluates_and_reloads(toy_cfg, workdir, capsys):
    result = run_recbole(model="REG4Rec", dataset="toy", config_dict=toy_cfg)
    test = result["test_result"]
    assert set(test) >= {"recall@10", "ndcg@10", "mrr@10", "hit@10"}
    assert 0.0 < test["hit@10"] <= 1.0  # tokens + fusion learn something on clustered data
    assert test["recall@5"] <= test["recall@10"]
    files = glob.glob(str(workdir / "saved" / "REG4Rec-*.pth"))
    assert len(files) == 1  # best checkpoint written and reloaded by trainer.evaluate

    config, model, dataset, train, valid, test_data = load_data_and_model(files[0])
    assert type(model).__name__ == "REG4Rec" and not model.training
    inter = next(iter(test_data))[0]
    with torch.no_grad():
        a = model.full_sort_predict(inter)
        b = model.full_sort_predict(inter)
    assert torch.equal(a, b) and a.shape == (inter.length, dataset.item_num)
    assert torch.isfinite(a[:, 1:]).all()

    # explanations from the checkpoint (API and CLI)
    from recbole_reg4rec.explain import explain_users
    cli = load_entry_point("reg4rec")

    users = [str(dataset.id2token(dataset.uid_field, 1)), str(dataset.id2token(dataset.uid_field, 2))]
    ex = explain_users(files[0], users, topk=3)
    assert [e.user for e in ex] == users
    first = ex[0].items[0]
    assert len(ex[0].items) == 3 and first.reached_by_beam
    assert len(first.path) == model.reasoning_steps
    assert {s.codebook for s in first.path} == set(range(model.n_codebooks))
    assert all(0.0 <= s.reflection <= 1.0 and 0.0 < s.confidence <= 1.0 for s in first.path)
    assert "items" in first.path[0].description and "genre" in first.path[0].description
    assert ex[0].pruned_by_catalogue >= 0
    capsys.readouterr()
    assert cli.main(["explain", "--model_file", files[0], "--users", users[0], "--topk", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["user"] == users[0] and len(printed[0]["items"]) == 2
    assert cli.main(["explain", "--model_file", files[0], "--users", "no-such-user"]) == 2


def test_ablation_switches_run(toy_cfg):
    cfg = dict(toy_cfg, epochs=1, crss_enabled=False, corp_enabled=False, item_fusion_weight=0.0, reasoning_steps=2)
    result = run_recbole(model="REG4Rec", dataset="toy", config_dict=cfg, saved=False)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
