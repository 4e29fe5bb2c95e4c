"""Ray Tune: trials running at the same time never share a checkpoint, log or tensorboard path.

Three trials of one identical config run at once, and every Ray worker pins RecBole's time stamps
(checkpoint and log names) to one value: the worst case of trials "started in the same second".
Each trial must still write exactly one checkpoint, log file and tensorboard folder of its own,
inside its own trial folder, named after its trial id.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.tuning import SweepSettings, run_sweep
from synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset

STAMP = "Jan-01-2026_00-00-00"


@pytest.fixture(scope="module")
def ray_with_one_time_stamp():
    import ray

    def pin_recbole_time_stamps():  # runs in every Ray worker process before any trial
        import recbole.trainer.trainer
        import recbole.utils.logger

        recbole.trainer.trainer.get_local_time = lambda: STAMP
        recbole.utils.logger.get_local_time = lambda: STAMP

    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=3, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": pin_recbole_time_stamps})
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_concurrent_trials_write_only_their_own_files(ray_with_one_time_stamp, workdir):
    import yaml

    write_synthetic_dataset(workdir / "data", "toy")
    config = {
        "data_path": str(workdir / "data"), "load_col": SYNTHETIC_LOAD_COL, "epochs": 1, "train_batch_size": 256,
        "eval_batch_size": 256, "MAX_ITEM_LIST_LENGTH": 10, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
        "n_heads": 1, "train_neg_sample_args": None, "metrics": ["NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "seed": 2020, "use_gpu": False,
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    (workdir / "p.hyper").write_text("learning_rate choice [0.001]\n")  # three trials, one config
    settings = SweepSettings(model="SASRec", dataset="toy", params_file="p.hyper", output=str(workdir / "out"),
                             config_files=[str(workdir / "tiny.yaml")], num_samples=3, scheduler="fifo",
                             cpus_per_trial=1)
    result = run_sweep(settings)
    assert len(result.table) == 3 and (result.table["status"] == "completed").all()

    checkpoints = sorted(Path(workdir / "out").rglob("saved/SASRec-*.pth"))
    assert len(checkpoints) == 3, checkpoints
    trial_dirs = {c.parent.parent for c in checkpoints}
    assert len(trial_dirs) == 3  # one trial folder each ...
    for trial_dir, checkpoint in zip(sorted(trial_dirs), checkpoints):
        run_id = load_checkpoint(checkpoint)["run_id"]
        assert checkpoint.name == f"SASRec-{STAMP}-{run_id}.pth"  # ... and a name that is the trial's own
        assert run_id in trial_dir.name  # the trial id names the trial folder too
        logs = list((trial_dir / "log" / "SASRec").glob("*.log"))
        boards = list((trial_dir / "log_tensorboard").iterdir())
        assert len(logs) == 1 and len(boards) == 1
        assert STAMP in logs[0].name and boards[0].name == logs[0].name[: -len(".log")]
    names = [c.name for c in checkpoints]
    log_names = [p.name for p in Path(workdir / "out").rglob("log/SASRec/*.log")]
    assert len(set(names)) == 3 and len(set(log_names)) == 3  # unique even if the folders were one
