"""The one builder of tiny run configurations for tests: seconds-long runs on the synthetic
atomic files of :mod:`synthetic`. Every test config starts from :data:`BASE`; a test states only
what it changes."""

from __future__ import annotations

from typing import Any, Dict, Optional

from synthetic import SYNTHETIC_LOAD_COL

#: What every tiny run shares: the synthetic files' columns, one small layer, quiet, reproducible.
BASE: Dict[str, Any] = {
    "load_col": SYNTHETIC_LOAD_COL,
    "MAX_ITEM_LIST_LENGTH": 10,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "show_progress": False,
    "seed": 2020,
    "reproducibility": True,
}


def tiny_config(data_path: Optional[object] = None, **settings: Any) -> Dict[str, Any]:
    """``config_dict`` of a tiny run: :data:`BASE`, then ``data_path`` (when given), then ``settings``."""
    config = dict(BASE)
    if data_path is not None:
        config["data_path"] = str(data_path)
    config.update(settings)
    return config


#: a seconds-long first-stage REG4Rec run, with the real tokenizer at tiny sizes (add ``data_path``)
REG4REC_STAGE1: Dict[str, Any] = tiny_config(
    epochs=2,
    train_batch_size=128,
    eval_batch_size=100000,
    n_heads=2,
    metrics=["Recall", "NDCG", "MRR", "Hit"],
    topk=[5, 10],
    valid_metric="NDCG@10",
    beam_size=20,
    crss_warmup_epochs=1,
    # tokenizer: small and fast
    n_codebooks=3,
    codebook_size=8,
    mpq_feature_source="side_info",
    mpq_epochs=5,
    pars_enabled=False,  # first stage only (the alignment stage has its own tests)
)
