"""Helpers for the REG4Rec generator tests: a tiny model on synthetic data with chosen tokens."""

from __future__ import annotations

import itertools
from typing import Dict, Optional, Tuple

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_reg4rec.tokenizer.semantic_ids import SemanticIDs
from synthetic import write_synthetic_dataset
from tiny_config import tiny_config as base_config


def structured_codes(n_items: int, sizes: Tuple[int, ...], seed: int = 0) -> SemanticIDs:
    """Distinct random token sets for items 1..n_items-1 (row 0 = pad codes)."""
    g = torch.Generator().manual_seed(seed)
    combos = list(itertools.product(*[range(d) for d in sizes]))
    pick = torch.randperm(len(combos), generator=g)[: n_items - 1]
    codes = torch.tensor([combos[i] for i in pick.tolist()], dtype=torch.long)
    codes = torch.cat([torch.tensor([list(sizes)]), codes])
    return SemanticIDs(codes, tuple(sizes), ordered=False)


def tiny_config(root, extra: Optional[Dict] = None, n_items: int = 30, n_users: int = 40) -> Dict:
    write_synthetic_dataset(root, "tiny", n_users=n_users, n_items=n_items, n_clusters=3)
    cfg = base_config(
        root,
        epochs=1,
        train_batch_size=64,
        eval_batch_size=100000,
        MAX_ITEM_LIST_LENGTH=8,
        n_heads=2,
        hidden_dropout_prob=0.0,
        attn_dropout_prob=0.0,
        use_gpu=False,
        topk=[5],
        metrics=["Recall", "NDCG"],
        valid_metric="NDCG@5",
        beam_size=10,
        initializer_range=0.5,
    )
    cfg.update(extra or {})
    return cfg


def build_tiny(monkeypatch, root, extra: Optional[Dict] = None, sizes=(4, 4, 4), n_items: int = 30, ordered=False):
    """(model, train_data, test_data) of REG4Rec on a tiny synthetic set with structured codes."""
    import recbole_reg4rec.model.reg4rec as reg

    def fake_ids(config, dataset, logger=None):
        sids = structured_codes(dataset.item_num, sizes)
        return SemanticIDs(sids.codes, sids.codebook_sizes, ordered)

    monkeypatch.setattr(reg, "load_semantic_ids", fake_ids)
    config = Config(model="REG4Rec", dataset="tiny", config_dict=tiny_config(root, extra, n_items=n_items))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    model = reg.REG4Rec(config, train._dataset)
    return model, train, test
