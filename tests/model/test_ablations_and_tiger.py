"""Ablation models and the TIGER baseline: registered, defined by their settings, runnable."""

from __future__ import annotations

import pytest
from recbole.config import Config
from recbole.utils import get_model, get_trainer

from tiny_models import tiny_config
from recbole_reg4rec.model import ABLATIONS, TIGER
from recbole_reg4rec.quick_start import run_recbole
from recbole_reg4rec.trainer import REG4RecTrainer


@pytest.mark.parametrize("cls", [*ABLATIONS, TIGER], ids=lambda c: c.__name__)
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
