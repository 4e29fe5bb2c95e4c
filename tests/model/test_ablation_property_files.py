"""Ablations and TIGER read what defines them from their own property file, and nothing else."""

from __future__ import annotations

import pytest
from recbole.config import Config

from recbole_reg4rec.model import TIGER, REG4Rec_woCORP, REG4Rec_woCRSS, REG4Rec_woMPQ, REG4Rec_woMSRA
from recbole_reg4rec.model import REG4Rec_faithful, REG4Rec_woPARS, REG4Rec_woSteering

# What each variant enforced when these settings were written in the classes themselves.
DEFINING = [
    (REG4Rec_faithful, {"item_fusion_weight": 0.0}),
    (REG4Rec_woMPQ, {"tokenizer": "pq"}),
    (REG4Rec_woCRSS, {"crss_enabled": False}),
    (REG4Rec_woPARS, {"pars_enabled": False}),
    (REG4Rec_woMSRA, {"msra_horizon": 0}),
    (REG4Rec_woCORP, {"corp_enabled": False}),
    (REG4Rec_woSteering, {"beam_prior_steering": False}),
    (TIGER, {"tokenizer": "rq", "crss_enabled": False, "corp_enabled": True, "item_fusion_weight": 0.0,
             "first_step_weight": 0.0, "item_id_embedding": False, "reflection_loss_weight": 0.0,
             "pars_enabled": False, "composed_item_loss_weight": 0.0}),
]


@pytest.mark.parametrize("cls, defining", DEFINING, ids=[cls.__name__ for cls, _ in DEFINING])
def test_fixed_settings_are_those_of_the_property_file(cls, defining):
    assert cls.FIXED == defining
    assert all(type(cls.FIXED[key]) is type(value) for key, value in defining.items())  # 0.0 stays a float


def test_tiger_refuses_a_config_that_contradicts_its_property_file():
    config = Config(model="TIGER", dataset="ml-100k", config_dict={"tokenizer": "mpq"})
    with pytest.raises(ValueError, match=r"TIGER is REG4Rec with tokenizer = 'rq' .* sets tokenizer = 'mpq'\. Remove"):
        TIGER(config, None)
