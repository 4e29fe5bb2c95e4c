"""REG4Rec through RecBole's own entry points on tiny synthetic data, with the real tokenizer."""

from __future__ import annotations

import glob
import json

import pytest
import torch

from recbole_reg4rec.quick_start import load_data_and_model, run_recbole
from entry_points import load_entry_point
from synthetic import write_synthetic_dataset
from tiny_config import REG4REC_STAGE1 as FAST


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
    # 3 codebooks of 8 tokens spell 512 token sets for 100 items: CORP must drop some candidates;
    # with reflection_threshold 0 (default) it drops none by reflection
    assert ex[0].pruned_by_catalogue > 0 and ex[0].pruned_by_reflection == 0
    # each item's first-step score: the sum of its tokens' start-state log-probabilities (finite, below 0)
    assert all(-float("inf") < it.first_step_score < 0 for it in ex[0].items)
    assert ex[0].first_step_weight == model.first_step_weight
    assert ex[0].first_step_source == "the start state's view of it"  # the full model trains no composed head
    capsys.readouterr()
    assert cli.main(["explain", "--model_file", files[0], "--users", users[0], "--topk", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["user"] == users[0] and len(printed[0]["items"]) == 2
    assert "first_step_score" in printed[0]["items"][0] and "first_step_weight" in printed[0]
    assert cli.main(["explain", "--model_file", files[0], "--users", "no-such-user"]) == 2


def test_ablation_switches_run(toy_cfg):
    cfg = dict(toy_cfg, epochs=1, crss_enabled=False, corp_enabled=False, item_fusion_weight=0.0, reasoning_steps=2)
    result = run_recbole(model="REG4Rec", dataset="toy", config_dict=cfg, saved=False)
    chance_hit10 = 10 / 100  # a random ranking of the 100 items
    assert result["test_result"]["hit@10"] > 1.5 * chance_hit10  # measured 0.25 at seed 2020
