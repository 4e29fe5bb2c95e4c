"""Runs sharing a folder: checkpoint names carry a run id, a run never replaces another run's
file, ``--resume`` takes a file or a run id and refuses another model's or dataset's checkpoint
before anything is written."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

import recbole.trainer.trainer as recbole_trainer
from recbole_reg4rec.compat.checkpoints import (
    CheckpointCollisionError,
    CheckpointMismatchError,
    find_checkpoint,
    last_checkpoint_path,
    load_checkpoint,
)
from recbole_reg4rec.quick_start import load_data_and_model, run_recbole
from entry_points import load_entry_point
from synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
STAMP = "Jan-01-2026_00-00-00"


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def pinned_stamp(monkeypatch):
    """Every trainer started "in the same second": RecBole's time stamp is one fixed value."""
    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: STAMP)


def _trainers(monkeypatch):
    """Record every trainer built from now on."""
    built = []
    original = recbole_trainer.Trainer.__init__
    monkeypatch.setattr(recbole_trainer.Trainer, "__init__",
                        lambda self, *a, **k: original(self, *a, **k) or built.append(self))
    return built


def test_three_runs_started_in_one_second_keep_their_own_checkpoints(tmp_path):
    """Three processes started at one instant into one folder (the time stamp pinned): three best
    models, log files and tensorboard folders, each run's test equal to its run alone."""
    script = REPO / "scripts" / "concurrent_runs_check.py"
    spec = importlib.util.spec_from_file_location("concurrent_runs_check", script)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    summary = check.check(tmp_path, runs=3)
    assert summary["ok"], summary
    assert summary["start_spread_s"] < 1.0
    assert summary["distinct_checkpoints"] == summary["checkpoint_files_in_folder"] == 3
    names = [os.path.basename(r["checkpoint"]) for r in summary["rows"]]
    for name, row in zip(names, summary["rows"]):
        assert name == f"SASRec-{check.PINNED_STAMP}-{row['run_id']}.pth"
    assert len({str(r["test_result"]) for r in summary["rows"]}) == 3  # three different seeds, three results
    for row in summary["rows"]:
        assert row["same_test_as_alone"] and row["same_weights_as_alone"] and row["file_is_its_own"]
    # the new names load as before
    config, model, *_ = load_data_and_model(summary["rows"][0]["checkpoint"])
    assert config["seed"] == summary["rows"][0]["seed"] and not model.training


def test_a_file_on_disk_is_never_overwritten_by_another_run(workdir, fast_sasrec_config, pinned_stamp, monkeypatch,
                                                           one_thread):
    config = dict(fast_sasrec_config, run_id="sweep1", epochs=1)
    os.makedirs("saved/last")
    taken = f"saved/SASRec-{STAMP}-sweep1.pth"
    Path(taken).write_bytes(b"another run's model")
    trainers = _trainers(monkeypatch)
    run_recbole(model="SASRec", dataset="toy", config_dict=config)
    assert Path(taken).read_bytes() == b"another run's model"
    mine = trainers[0].saved_model_file
    assert mine != taken and os.path.basename(mine).startswith(f"SASRec-{STAMP}-sweep1-")
    assert load_checkpoint(mine)["run_id"] == trainers[0].run_id

    # a name that appears only after the trainer chose it (a race): refused, not replaced
    trainers.clear()
    original_fit = recbole_trainer.Trainer.fit

    def fit_after_another_run_wrote(self, *args, **kwargs):
        Path(self.saved_model_file).write_bytes(b"written meanwhile")
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(recbole_trainer.Trainer, "fit", fit_after_another_run_wrote)
    with pytest.raises(CheckpointCollisionError, match="belongs to another run and was left untouched"):
        run_recbole(model="SASRec", dataset="toy", config_dict=config)
    assert Path(trainers[0].saved_model_file).read_bytes() == b"written meanwhile"
    last = load_checkpoint(last_checkpoint_path(trainers[0].saved_model_file))  # its resume point: its own
    assert last["run_id"] == trainers[0].run_id


def test_bad_run_id_is_one_clear_error(workdir, fast_sasrec_config):
    with pytest.raises(ValueError, match=r"run_id = 'a/b' cannot be part of a file name"):
        run_recbole(model="SASRec", dataset="toy", config_dict=dict(fast_sasrec_config, run_id="a/b"))


def test_resume_by_run_id_and_refusal_of_another_models_or_datasets_checkpoint(
        workdir, fast_sasrec_config, monkeypatch, capsys, one_thread):
    trainers = _trainers(monkeypatch)
    first = run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config)
    best, run_id = trainers[0].saved_model_file, trainers[0].run_id
    assert find_checkpoint(run_id, "saved") == best
    # resuming the finished run by its id trains nothing more and tests the same model
    again = run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config, resume=run_id)
    assert again["test_result"] == first["test_result"]
    assert trainers[1].saved_model_file == best and trainers[1].run_id == run_id

    write_synthetic_dataset(workdir / "data", "other", n_users=40, seed=3)
    before = sorted(str(p) for p in workdir.rglob("*") if p.is_file())
    with pytest.raises(CheckpointMismatchError, match="continues model SASRec on dataset toy, but this run trains "
                                                      "GRU4Rec on toy; nothing was trained or written"):
        run_recbole(model="GRU4Rec", dataset="toy", config_dict=fast_sasrec_config, resume=best)
    with pytest.raises(CheckpointMismatchError, match="but this run trains SASRec on other"):
        run_recbole(model="SASRec", dataset="other", config_dict=fast_sasrec_config, resume=best)

    # the command line: one line on stderr, exit status 2
    cli = load_entry_point("run_recbole")
    monkeypatch.setattr(recbole_trainer.Trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    import yaml

    Path("run.yaml").write_text(yaml.safe_dump(fast_sasrec_config))
    before.append(str(workdir / "run.yaml"))
    argv = ["--model=GRU4Rec", "--dataset=toy", "--config_files=run.yaml", f"--resume={run_id}"]
    monkeypatch.setattr("sys.argv", ["run_recbole.py", *argv])
    capsys.readouterr()  # the earlier runs' logs
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --resume={best} continues model SASRec on dataset toy") and "\n" not in err
    assert sorted(str(p) for p in workdir.rglob("*") if p.is_file()) == sorted(before)  # nothing written

    with pytest.raises(FileNotFoundError, match="no checkpoint of run 'nosuchrun' in saved"):
        run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config, resume="nosuchrun")
