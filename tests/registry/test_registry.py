"""recbole_reg4rec.registry: RecBole's own lookups find our models, trainers, datasets and properties."""

from __future__ import annotations

import pytest
from recbole.config import Config
from recbole.utils import get_model

from recbole_reg4rec.registry import register_model


def test_unknown_model_lists_available_names():
    with pytest.raises(ValueError) as info:
        get_model("SASRecc")
    message = str(info.value)
    assert "Unknown model 'SASRecc'" in message and "SASRec" in message and "lightgbm" not in message.split(".")[0]


def test_registered_model_properties_load_at_internal_priority(workdir, tmp_path):
    from recbole.model.sequential_recommender.sasrec import SASRec

    class ToySASRec(SASRec):
        pass

    prop = tmp_path / "ToySASRec.yaml"
    prop.write_text("hidden_size: 24\nn_layers: 3\nloss_type: CE\ntrain_neg_sample_args: ~\n")
    register_model(ToySASRec, property_files=(str(prop),))
    assert get_model("ToySASRec") is ToySASRec
    user_file = tmp_path / "user.yaml"
    user_file.write_text("n_layers: 1\n")
    config = Config(model="ToySASRec", dataset="toy", config_file_list=[str(user_file)])
    assert config["hidden_size"] == 24  # our property beats RecBole's overall default (64)
    assert config["n_layers"] == 1  # the user's config file beats our property
    # our dataset file (dataset/ml-100k.yaml) beats the model's property, as RecBole's own
    # properties/dataset/*.yaml do; the user's file still wins
    config = Config(model="ToySASRec", dataset="ml-100k", config_file_list=[str(user_file)])
    assert config["hidden_size"] == 64 and config["MAX_ITEM_LIST_LENGTH"] == 20
    assert config["n_layers"] == 1



def test_recbole_lookups_find_our_classes_by_name(toy_data):
    """RecBole's own objective_function / get_trainer / create_dataset resolve our registrations."""
    from recbole.data.dataset import SequentialDataset
    from recbole.quick_start import objective_function
    from recbole.utils import get_trainer

    from recbole_reg4rec.registry import register_dataset
    from recbole_reg4rec.trainer import REG4RecTrainer
    from synthetic import SYNTHETIC_LOAD_COL

    class REG4RecProbeDataset(SequentialDataset):
        built = 0

        def __init__(self, config):
            type(self).built += 1
            super().__init__(config)

    register_dataset("REG4Rec", REG4RecProbeDataset)
    try:
        result = objective_function(config_dict={
            "model": "REG4Rec", "dataset": "toy", "data_path": str(toy_data), "load_col": SYNTHETIC_LOAD_COL,
            "epochs": 1, "pars_epochs": 0, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1,
            "MAX_ITEM_LIST_LENGTH": 10, "show_progress": False, "n_codebooks": 2, "codebook_size": 8,
            "beam_size": 20, "tokenizer_cache_dir": str(toy_data / "tokens"),
        }, saved=False)
    finally:
        import recbole.data.dataset

        delattr(recbole.data.dataset, "REG4RecDataset")
    assert result["model"] == "REG4Rec" and result["test_result"]["ndcg@10"] > 0
    assert REG4RecProbeDataset.built == 1
    assert get_trainer(None, "REG4Rec") is REG4RecTrainer
