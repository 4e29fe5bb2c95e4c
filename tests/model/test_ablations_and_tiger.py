"""Ablation models, the paper-faithful model and the TIGER baseline: registered, defined by their settings, runnable."""

from __future__ import annotations

import pytest
from recbole.config import Config
from recbole.utils import get_model, get_trainer

from tiny_models import tiny_config
from recbole_reg4rec.model import ABLATIONS, TIGER, REG4Rec_faithful
from recbole_reg4rec.quick_start import run_recbole
from recbole_reg4rec.trainer import REG4RecTrainer


@pytest.mark.parametrize("cls", [*ABLATIONS, REG4Rec_faithful, TIGER], ids=lambda c: c.__name__)
def test_registered_with_their_defining_settings(cls):
    assert get_model(cls.__name__) is cls
    config = Config(model=cls.__name__, dataset="ml-100k")
    for key, value in cls.FIXED.items():
        assert config[key] == value, key
    assert get_trainer(config["MODEL_TYPE"], cls.__name__) is REG4RecTrainer


def test_ablation_refuses_a_config_that_switches_its_component_back_on():
    config = Config(model="REG4Rec_woCRSS", dataset="ml-100k", config_dict={"crss_enabled": True})
    with pytest.raises(ValueError, match="REG4Rec_woCRSS is REG4Rec with crss_enabled = False"):
        get_model("REG4Rec_woCRSS")(config, None)


def test_full_reg4rec_differs_from_each_ablation():
    full = Config(model="REG4Rec", dataset="ml-100k")
    for cls in ABLATIONS:
        assert any(full[k] != v for k, v in cls.FIXED.items()), cls.__name__


def test_faithful_model_is_reg4rec_without_id_head_and_with_finer_codebooks():
    """Its benchmark cells were run as REG4Rec[item_fusion_weight=0, codebook_size=256]: the same configuration."""
    faithful = Config(model="REG4Rec_faithful", dataset="ml-100k").final_config_dict
    variant = Config(model="REG4Rec", dataset="ml-100k",
                     config_dict={"item_fusion_weight": 0.0, "codebook_size": 256}).final_config_dict
    differing = {key for key in set(faithful) | set(variant) if faithful.get(key) != variant.get(key)}
    assert differing == {"model", "run_id"}  # (run_id: a fresh one per Config)
    assert Config(model="REG4Rec", dataset="ml-100k")["codebook_size"] == 64  # the full model keeps its own D


def test_faithful_model_on_a_catalogue_smaller_than_its_codebooks_is_a_clear_error(workdir):
    config = tiny_config(workdir / "data", {"epochs": 1}, n_users=40)  # the model's own D = 256, 30 items
    with pytest.raises(ValueError, match=r"codebook_size=256 is larger than the catalogue \(30 items\)"):
        run_recbole(model="REG4Rec_faithful", dataset="tiny", config_dict=config)


def test_faithful_model_learns_the_synthetic_chains_next_item(workdir):
    """As TIGER below: no ID head, so the composed item head and the token paths must rank the next item."""
    config = tiny_config(workdir / "data", {"epochs": 3, "learning_rate": 0.01, "n_codebooks": 2, "codebook_size": 4,
                                             "metrics": ["Recall", "NDCG", "Hit"], "pars_enabled": False,
                                             "tokenizer_cache_dir": str(workdir / "tokens")}, n_users=120)
    result = run_recbole(model="REG4Rec_faithful", dataset="tiny", config_dict=config)
    assert result["test_result"]["hit@5"] > 2 * 5 / 30  # twice a random ranking's hit@5 over 30 items


def test_tiger_learns_the_synthetic_chains_next_item(workdir):
    """Users walk through their cluster's items in a fixed order: a trained TIGER must put the
    next item in its top 5 far more often than a random ranking of the 30 items would."""
    config = tiny_config(workdir / "data", {"epochs": 3, "learning_rate": 0.01, "n_codebooks": 2, "codebook_size": 4,
                                             "metrics": ["Recall", "NDCG", "Hit"],
                                             "tokenizer_cache_dir": str(workdir / "tokens")}, n_users=120)
    result = run_recbole(model="TIGER", dataset="tiny", config_dict=config)
    chance_hit5 = 5 / 30
    assert result["test_result"]["hit@5"] > 2 * chance_hit5  # measured 0.575 at seed 2020
    assert result["best_valid_result"] is not None
