"""Ray Tune sweeps: params-file parsing, input validation before any trial, and real sweeps
(one local Ray for the whole module, ``RAY_AUTH_MODE=disabled``, temp dirs)."""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from ray import tune

from recbole_reg4rec.tuning import ParamsFileError, SweepError, SweepSettings, parse_params_text, prepare, run_sweep
from recbole_reg4rec.tuning.params import check_keys
from synthetic import SYNTHETIC_LOAD_COL

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
import run_hyper  # noqa: E402


# ---------------------------------------------------------------- params file -> search space
def test_every_distribution_maps_to_its_ray_domain():
    specs = parse_params_text(
        "# a comment\n"
        "\n"
        "learning_rate loguniform -8,0\n"
        "hidden_size choice [32, 64]\n"
        "hidden_dropout_prob uniform 0.1,0.5   # trailing comment\n"
        "MAX_ITEM_LIST_LENGTH quniform 10,50,10\n"
        "weight_decay qloguniform -9,-3,0.0001\n"
        "n_layers randint 1,4\n"
        "inner_size qrandint 32,128,32\n"
        "loss_type grid ['CE', 'BPR']\n"
    )
    space = {s.key: s.to_tune() for s in specs}
    assert [s.line for s in specs] == [3, 4, 5, 6, 7, 8, 9, 10]
    lr = space["learning_rate"]
    assert isinstance(lr, tune.search.sample.Float)
    # RecBole convention: natural-log bounds
    assert lr.lower == pytest.approx(math.exp(-8)) and lr.upper == pytest.approx(1.0)
    assert isinstance(lr.sampler, tune.search.sample.LogUniform)
    assert space["hidden_size"].categories == [32, 64]
    assert (space["hidden_dropout_prob"].lower, space["hidden_dropout_prob"].upper) == (0.1, 0.5)
    assert space["MAX_ITEM_LIST_LENGTH"].sampler.q == 10
    assert isinstance(space["n_layers"], tune.search.sample.Integer)
    assert (space["n_layers"].lower, space["n_layers"].upper) == (1, 4)
    assert space["inner_size"].sampler.q == 32
    wd = space["weight_decay"]  # exp(-9)=0.000123 -> 0.0002, exp(-3)=0.0498 -> 0.0497
    assert wd.lower == pytest.approx(0.0002) and wd.upper == pytest.approx(0.0497) and wd.sampler.q == 0.0001
    assert space["loss_type"] == {"grid_search": ["CE", "BPR"]}
    assert "exp(-8)=0.000335" in specs[0].describe()
    # sampled values fall in range
    for _ in range(20):
        assert math.exp(-8) <= lr.sample() <= 1.0
        assert space["n_layers"].sample() in (1, 2, 3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("hidden_size choice [8]\nlearning_rate log_uniform -8,0\n", "line 2: unknown distribution 'log_uniform'"),
        ("learning_rate log_uniform -8,0\n", "Did you mean 'loguniform'"),
        ("learning_rate uniform 0.1\n", "takes 2 comma-separated numbers"),
        ("learning_rate uniform 0.5,0.1\n", "needs low < high"),
        ("hidden_size choice [8, 16\n", "cannot read"),
        ("hidden_size choice []\n", "needs a non-empty list"),
        ("n_layers randint 1.5,3\n", "needs integers"),
        ("hidden_size choice [8]\nhidden_size choice [16]\n", "already defined on line 1"),
        ("learning_rate\n", "expected `<config key> <distribution> <arguments>`"),
        ("# only comments\n", "no parameters found"),
        ("x quniform 1,5,0\n", "step q"),
        ("x quniform 0.11,0.19,0.1\n", "no multiple of q=0.1"),
    ],
)
def test_bad_params_lines_name_the_line_and_the_fix(text, message):
    with pytest.raises(ParamsFileError, match=None) as info:
        parse_params_text(text, source="p.hyper")
    assert message in str(info.value)
    assert str(info.value).startswith("p.hyper")


def test_unknown_key_is_rejected_with_a_suggestion():
    specs = parse_params_text("learning_rat loguniform -8,0\n", source="p.hyper")
    with pytest.raises(ParamsFileError) as info:
        check_keys(specs, ["learning_rate", "hidden_size"], "SASRec", "toy")
    text = str(info.value)
    assert "line 1" in text and "'learning_rat' is not a config key of SASRec on toy" in text
    assert "Did you mean 'learning_rate'" in text


def test_trial_config_keeps_rays_gpu_choice_and_per_trial_paths(monkeypatch):
    from recbole_reg4rec.tuning.trainable import TrialSetup, build_trial_config

    setup = TrialSetup("SASRec", "toy", config_dict={"epochs": 3, "learning_rate": 0.1}, use_gpu=True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what Ray assigned to this trial
    config = build_trial_config(setup, {"learning_rate": 0.01}, "/runs/trial_7")
    # RecBole copies gpu_id into CUDA_VISIBLE_DEVICES: it must stay Ray's choice, not "0"
    assert config["gpu_id"] == "3"
    assert config["learning_rate"] == 0.01 and config["epochs"] == 3  # sampled value wins
    assert config["checkpoint_dir"] == "/runs/trial_7/saved" and config["show_progress"] is False
    cpu = build_trial_config(TrialSetup("SASRec", "toy"), {}, "/runs/t")
    assert cpu["gpu_id"] == ""  # no GPU reserved: RecBole runs on the CPU


@pytest.mark.parametrize("trial", ["50870_00000", "1e5", "a1b2c3d4_00001"])
def test_a_trial_id_reaches_the_run_config_as_written(workdir, toy_data, trial):
    """RecBole reads config_dict strings as Python literals: a trial id made of digits and '_'
    must not turn into a number (it names the trial's checkpoints and log)."""
    from recbole_reg4rec.run import make_config
    from recbole_reg4rec.tuning.trainable import TrialSetup, build_trial_config

    setup = TrialSetup("SASRec", "toy", config_dict={"data_path": str(toy_data), "load_col": SYNTHETIC_LOAD_COL})
    config = make_config("SASRec", "toy", None, build_trial_config(setup, {}, str(workdir), run_id=trial))
    assert config["run_id"] == trial


# ---------------------------------------------------------------- validation before trials
def _tiny_yaml(workdir: Path, data: Path, **extra) -> str:
    import yaml

    config = {
        "data_path": str(data),
        "load_col": SYNTHETIC_LOAD_COL,
        "epochs": 2,
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "MAX_ITEM_LIST_LENGTH": 10,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "n_heads": 1,
        "train_neg_sample_args": None,
        "metrics": ["Recall", "NDCG"],
        "topk": [5, 10],
        "valid_metric": "NDCG@10",
        "seed": 2020,
        "use_gpu": False,
    }
    config.update(extra)
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _settings(workdir, toy_data, params: str, **kw) -> SweepSettings:
    (workdir / "p.hyper").write_text(params)
    defaults = dict(
        model="SASRec",
        dataset="toy",
        params_file="p.hyper",  # relative on purpose: trials run elsewhere
        output=str(workdir / "out"),
        config_files=[_tiny_yaml(workdir, toy_data)],
        num_samples=1,
        cpus_per_trial=1,
    )
    defaults.update(kw)
    return SweepSettings(**defaults)


def test_prepare_validates_against_the_model_config(toy_data, workdir):
    prepared = prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\n"))
    assert prepared.mode == "max" and prepared.valid_metric.lower() == "ndcg@10"
    assert os.path.isabs(prepared.setup.config_dict["data_path"])
    assert all(os.path.isabs(f) for f in prepared.setup.config_files)

    # REG4Rec's token cache is shared by all trials (an absolute path, as in a plain run)
    reg = prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\n", model="REG4Rec"))
    assert reg.setup.config_dict["tokenizer_cache_dir"] == str(workdir / "saved" / "semantic_ids")

    with pytest.raises(SweepError, match=r"p\.hyper, line 2: 'hiden_size' is not a config key .*'hidden_size'"):
        prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\nhiden_size choice [8]\n"))
    with pytest.raises(SweepError, match=r"--epoch: not a config key .*'epochs'"):
        prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\n", overrides={"epoch": 3}))
    with pytest.raises(SweepError, match="dataset 'nosuch' not found"):
        prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\n", dataset="nosuch"))
    with pytest.raises(SweepError, match="Unknown model 'NoSuchModel'"):
        prepare(_settings(workdir, toy_data, "learning_rate loguniform -7,-4\n", model="NoSuchModel"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_cli_bad_input_exits_2_before_any_trial(toy_data, workdir, capsys):
    yaml_file = _tiny_yaml(workdir, toy_data)
    (workdir / "bad.hyper").write_text("hidden_size choice [8,16]\nlearning_rate normal 0,1\n")
    (workdir / "ok.hyper").write_text("hidden_size choice [8,16]\n")
    base = ["--model=SASRec", "--dataset=toy", f"--config_files={yaml_file}", f"--output={workdir / 'out'}"]

    assert run_hyper.main(base + ["--params_file=bad.hyper"]) == 2
    err = capsys.readouterr().err
    assert "line 2: unknown distribution 'normal'" in err and "Traceback" not in err

    assert run_hyper.main(base + ["--params_file=ok.hyper", "--hiden_size=8"]) == 2
    assert "--hiden_size: not a config key" in capsys.readouterr().err
    assert not (workdir / "out").exists()  # nothing ran, nothing written

    # the real process: exit status 2, one clear line, no traceback, no Ray started
    port = _closed_port()
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_hyper.py"), *base, "--params_file=ok.hyper", f"--address=127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=120, cwd=workdir,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- real sweeps on a local Ray
@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's sweeps (Ray startup is slow)."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_two_trial_sweep_writes_table_and_reusable_best_config(local_ray, toy_data, workdir, capsys):
    yaml_file = _tiny_yaml(workdir, toy_data)
    (workdir / "p.hyper").write_text("hidden_size grid [8,16]\nlearning_rate loguniform -6,-4\n")
    rc = run_hyper.main(
        ["--model=SASRec", "--dataset=toy", f"--config_files={yaml_file}", "--params_file=p.hyper",
         f"--output={workdir / 'out'}", "--cpus_per_trial=1", "--epochs=2"]
    )
    stdout = capsys.readouterr().out
    assert rc == 0
    out = workdir / "out"
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and set(table["hidden_size"]) == {8, 16}
    # ASHA (the default) may stop the weaker trial after an evaluation; the best one completes
    assert table.loc[0, "status"] == "completed" and set(table["status"]) <= {"completed", "stopped early"}
    assert (table["valid_score"] == table["valid_ndcg@10"]).all()  # selection on validation
    completed = table[table["status"] == "completed"]
    assert completed["valid_score"].is_monotonic_decreasing  # best first
    for column in ("test_ndcg@10", "test_recall@5"):
        assert completed[column].between(0, 1).all() and completed[column].notna().all()
    assert table.loc[table["status"] != "completed", "test_ndcg@10"].isna().all()
    md = (out / "results.md").read_text()
    assert md.count("| completed") == len(completed) and "nan" not in md and "2 trials, 0 failed" in stdout
    assert "learning_rate: loguniform exp(-6)=0.00248 .. exp(-4)=0.0183" in stdout  # the real range, shown first

    # the validation metric is reported after every epoch (what ASHA acts on), then the final report
    import json

    progress = sorted(out.glob("ray_results/*/*/result.json"))  # every report, one json per line
    assert len(progress) == 2
    full = 0
    for path in progress:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        assert all(r["valid_score"] is not None for r in rows) and (path.parent / "log").is_dir()  # RecBole's log
        epochs = [r["epoch"] for r in rows]
        assert epochs == [1, 2, 2][: len(epochs)]
        if rows[-1].get("completed") == 1:
            full += 1
            assert epochs == [1, 2, 2] and [r.get("completed") for r in rows] == [None, None, 1]
            assert "test_ndcg@10" in rows[-1] and "test_ndcg@10" not in rows[0]
    assert full == len(completed)

    # best_config.yaml reproduces the best trial through --config_files
    from recbole.config import Config

    best = table.iloc[0]
    config = Config(model="SASRec", dataset="toy", config_file_list=[str(out / "best_config.yaml")])
    assert config["hidden_size"] == best["hidden_size"]
    assert config["learning_rate"] == pytest.approx(best["learning_rate"])
    assert config["epochs"] == 2 and config["data_path"] == str(toy_data / "toy")
    assert not os.path.isabs(config["checkpoint_dir"])  # per-trial paths are not carried over


def test_a_failing_trial_is_recorded_and_the_sweep_finishes(local_ray, toy_data, workdir):
    # hidden_size 16 with 3 heads: SASRec raises in its constructor
    settings = _settings(workdir, toy_data, "n_heads grid [1, 3]\n", scheduler="fifo")
    result = run_sweep(settings)
    table = result.table.set_index("n_heads")
    assert table.loc[1, "status"] == "completed" and table.loc[1, "error"] == ""
    assert table.loc[3, "status"] == "failed"
    assert "not a multiple of the number of attention heads" in table.loc[3, "error"]
    assert result.best is not None and result.best["n_heads"] == 1
    saved = pd.read_csv(result.files["csv"])
    assert list(saved["status"]) == ["completed", "failed"]
    assert "not a multiple" in (Path(result.files["markdown"]).read_text())
