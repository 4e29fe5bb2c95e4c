"""compat.checkpoints: checkpoints that load weights-only, resume where they stopped, and refuse
pickled code or truncated files."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
import torch
from recbole.config import Config

from recbole_reg4rec import CorruptCheckpointError, UnsafeCheckpointError, load_checkpoint
from recbole_reg4rec.quick_start import load_data_and_model, run_recbole


def test_run_checkpoint_reload_and_safe_loading(fast_sasrec_config):
    result = run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config)
    assert result["test_result"]["ndcg@10"] > 0  # some test targets reach the top 10
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


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")  # the legacy file is pickled on purpose
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
