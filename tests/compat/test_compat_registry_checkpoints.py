"""The foundation: compatibility layer, registry, safe checkpoints and the CLI."""

from __future__ import annotations

import glob
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset
from recbole.utils import FeatureType, get_model

from recbole_reg4rec import CorruptCheckpointError, UnsafeCheckpointError, load_checkpoint
from recbole_reg4rec.compat.atomic_files import AtomicFileError
from recbole_reg4rec.quick_start import load_data_and_model, run_recbole
from recbole_reg4rec.registry import register_model

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _dataset(workdir, name, inter, item=None, **config):
    _write(workdir / "data" / name / f"{name}.inter", inter)
    if item is not None:
        _write(workdir / "data" / name / f"{name}.item", item)
    config_dict = {"data_path": str(workdir / "data"), "load_col": None, "train_neg_sample_args": None}
    config_dict.update(config)
    return create_dataset(Config(model="SASRec", dataset=name, config_dict=config_dict))


def _inter(n_users=4, n_items=5):
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    t = 0
    for u in range(n_users):
        for i in range(n_items):
            t += 1
            rows.append(f"u{u}\t{(i + u) % n_items + 1}\t{t}")
    return "\n".join(rows) + "\n"


def test_removed_numpy_aliases_restored_as_builtins():
    assert np.float is float and np.int is int and np.str is str and np.unicode is str
    assert np.bool in (bool, np.bool_)  # numpy 2 defines np.bool itself; we never override numpy
    # numpy's own types are untouched
    assert np.float64(1.5).dtype == np.dtype("float64")


def test_pandas3_loads_sequence_fields_with_empty_cells(workdir):
    item = (
        "item_id:token\tgenre:token_seq\temb:float_seq\tprice:float\n"
        "1\ta b\t0.5 1.5\t3.0\n"
        "2\t\t\t\n"  # every optional cell empty
        "3\tc\t2.0\t5.0\n"
        "4\ta c b\t1 2 3\t7.0\n"
        "5\tb\t4\t1.0\n"
    )
    ds = _dataset(workdir, "seqs", _inter(), item)
    assert ds.field2type["genre"] == FeatureType.TOKEN_SEQ
    feat = ds.item_feat.set_index(ds.iid_field)  # still a DataFrame before build()
    row = {tok: ds.field2token_id[ds.iid_field][tok] for tok in "12345"}
    assert [len(feat.loc[row[t], "genre"]) for t in "1234"] == [2, 0, 1, 3]
    assert feat.loc[row["2"], "price"] == pytest.approx((3.0 + 5.0 + 7.0 + 1.0) / 4)  # mean fill
    assert feat.loc[row["4"], "emb"].tolist() == [1.0, 2.0, 3.0] and len(feat.loc[row["2"], "emb"]) == 0
    assert ds.field2seqlen["genre"] == 3 and ds.field2seqlen["emb"] == 3
    item_feat = ds.get_item_feature() if hasattr(ds.item_feat, "interaction") else None
    assert item_feat is None or item_feat["genre"].shape[1] == 3


@pytest.mark.parametrize(
    "header, row, expected",
    [
        ("item_id:token\tprice:flaot", "1\t3.0", "unknown type suffix 'flaot'"),
        ("item_id\tprice:float", "1\t3.0", "is not of the form `field:type`"),
        ("item_id:token\tprice:float", "1\tcheap", "line 2, field 'price' (float) holds the non-numeric value 'cheap'"),
    ],
)
def test_bad_atomic_file_names_file_line_and_fix(workdir, header, row, expected):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "bad", _inter(), f"{header}\n{row}\n")
    message = str(info.value)
    assert "bad.item" in message and expected in message


def test_non_utf8_file_gets_clear_error(workdir):
    path = workdir / "data" / "latin" / "latin.inter"
    path.parent.mkdir(parents=True)
    path.write_bytes("user_id:token\titem_id:token\n".encode() + "caf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(AtomicFileError, match="not valid utf-8"):
        create_dataset(Config(model="SASRec", dataset="latin",
                              config_dict={"data_path": str(workdir / "data"), "load_col": None,
                                           "train_neg_sample_args": None}))


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
    config = Config(model="ToySASRec", dataset="ml-100k", config_file_list=[str(user_file)])
    assert config["hidden_size"] == 24  # our property beats RecBole's overall default (64)
    assert config["n_layers"] == 1  # the user's config file beats our property


def test_run_checkpoint_reload_and_safe_loading(fast_sasrec_config):
    result = run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    [checkpoint_file] = glob.glob("saved/SASRec-*.pth")

    # readable by torch's weights-only unpickler: no pickled Config inside
    raw = torch.load(checkpoint_file, weights_only=True)
    assert raw["config"]["model"] == "SASRec" and raw["config"]["final"]["hidden_size"] == 16

    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(checkpoint_file)
    assert config["hidden_size"] == 16 and dataset.item_num == 101
    from recbole.trainer import Trainer

    trainer = Trainer(config, model)
    again = trainer.evaluate(test_data, load_best_model=True, model_file=checkpoint_file)
    assert again["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)


def test_resume_checkpoint_continues_after_saved_epoch(fast_sasrec_config):
    run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config)
    [checkpoint_file] = glob.glob("saved/SASRec-*.pth")
    config, model, _, train_data, valid_data, _ = load_data_and_model(checkpoint_file)
    from recbole.trainer import Trainer

    trainer = Trainer(config, model)
    trainer.resume_checkpoint(checkpoint_file)
    saved_epoch = torch.load(checkpoint_file, weights_only=True)["epoch"]
    assert trainer.start_epoch == saved_epoch + 1
    assert trainer.best_valid_score == torch.load(checkpoint_file, weights_only=True)["best_valid_score"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_legacy_and_malicious_checkpoints_are_refused(workdir):
    torch.save({"config": _Exploit(), "state_dict": {}}, "evil.pth")
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint("evil.pth")
    assert "trusted=True" in str(info.value)
    with pytest.raises(UnsafeCheckpointError):
        load_data_and_model("evil.pth")
    assert not os.path.exists("PWNED")

    # a legacy RecBole checkpoint pickles this object
    config = Config(model="SASRec", dataset="ml-100k", config_dict={"train_neg_sample_args": None})
    torch.save({"config": config, "state_dict": {}}, "legacy.pth", pickle_protocol=4)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint("legacy.pth")
    assert load_checkpoint("legacy.pth", trusted=True)["config"]["model"] == "SASRec"


def test_truncated_checkpoint_is_reported(fast_sasrec_config):
    run_recbole(model="SASRec", dataset="toy", config_dict={**fast_sasrec_config, "epochs": 1})
    [checkpoint_file] = glob.glob("saved/SASRec-*.pth")
    data = Path(checkpoint_file).read_bytes()
    Path("cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupted"):
        load_checkpoint("cut.pth")


def test_cli_runs_builtin_model_with_overrides(fast_sasrec_config):
    config_file = Path("run.yaml")
    import yaml

    config_file.write_text(yaml.safe_dump({k: v for k, v in fast_sasrec_config.items() if k != "epochs"}))
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_recbole.py"), "--model=SASRec", "--dataset=toy",
         f"--config_files={config_file}", "--epochs=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = "\n".join(Path(p).read_text() for p in glob.glob("log/SASRec/*.log"))
    assert "epochs = 1" in log.replace("epochs = [1]", "epochs = 1") or "epochs: 1" in log
    assert "test result" in log


def test_cli_unknown_model_is_a_short_error(workdir):
    proc = subprocess.run([sys.executable, str(REPO / "run_recbole.py"), "--model=NoSuchModel"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Unknown model 'NoSuchModel'" in proc.stderr and "Traceback" not in proc.stderr


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
    assert result["model"] == "REG4Rec" and 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    assert REG4RecProbeDataset.built == 1
    assert get_trainer(None, "REG4Rec") is REG4RecTrainer
