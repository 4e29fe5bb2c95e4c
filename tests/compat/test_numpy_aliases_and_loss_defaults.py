"""compat.numpy_aliases and compat.loss_defaults: RecBole's Config on numpy 2, and its CE-loss
sequential models on its own defaults."""

from __future__ import annotations

import numpy as np
import pytest
from recbole.config import Config


def test_removed_numpy_aliases_restored_as_builtins():
    assert np.float is float and np.int is int and np.str is str and np.unicode is str
    assert np.bool in (bool, np.bool_)  # numpy 2 defines np.bool itself; we never override numpy
    # numpy's own types are untouched
    assert np.float64(1.5).dtype == np.dtype("float64")



def test_ce_models_run_on_recboles_own_defaults():
    """overall.yaml samples negatives, RecBole's CE sequential models refuse that: out of the box,
    `run_recbole.py --model=SASRec` must work, while an explicit conflict keeps RecBole's error."""
    assert Config(model="SASRec", dataset="ml-100k")["train_neg_sample_args"]["distribution"] == "none"
    assert Config(model="GRU4Rec", dataset="ml-100k")["train_neg_sample_args"]["distribution"] == "none"
    # a pairwise general model keeps RecBole's default sampling
    assert Config(model="BPR", dataset="ml-100k")["train_neg_sample_args"]["distribution"] == "uniform"
    sampling = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
    with pytest.raises(ValueError, match="should be None when the loss_type is CE"):
        Config(model="SASRec", dataset="ml-100k", config_dict={"train_neg_sample_args": sampling})
