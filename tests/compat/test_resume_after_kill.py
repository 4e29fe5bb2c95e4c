"""Crash safety: a REG4Rec run SIGKILLed during stage 1, during stage 2 or while writing its
token cache is resumed (``--resume`` / ``resume=``, or simply rerun for the tokenizer) and ends
with exactly the test metrics and weights of an uninterrupted run under the same seed. Two
processes building the same token cache leave one valid file.

The killed runs are real subprocesses (``kill_points.py`` kills itself with SIGKILL at a
precise point); the resumed runs continue in this process, as a fresh run would.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kill_points import assert_same_as_reference, tiny_config
from recbole_reg4rec.compat.checkpoints import last_checkpoint_path, load_checkpoint
from recbole_reg4rec.quick_start import run_recbole

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def one_thread():
    """Same arithmetic in every run (and much faster on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted two-stage run: its result and best checkpoint."""
    root = tmp_path_factory.mktemp("reference")
    old_cwd, old_argv, threads = os.getcwd(), sys.argv, torch.get_num_threads()
    os.chdir(root)
    sys.argv = ["pytest"]
    torch.set_num_threads(1)
    try:
        config = tiny_config(root)
        result = run_recbole(model="REG4Rec", dataset="tiny", config_dict=config)
        [best] = glob.glob(str(root / "saved" / "REG4Rec-*.pth"))
        assert not os.path.exists(last_checkpoint_path(best))  # removed once training was over
        yield {"result": result, "best": load_checkpoint(best), "tokens": root / "tokens"}
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv
        torch.set_num_threads(threads)


def _config(workdir: Path, reference, **extra):
    """The reference config under ``workdir`` (sharing the reference's token cache unless overridden)."""
    return tiny_config(workdir, **{"tokenizer_cache_dir": str(reference["tokens"]), **extra})


def _killed_run(workdir: Path, point: str, config: dict) -> None:
    config_file = workdir / f"{point}.json"
    config_file.write_text(json.dumps(config))
    proc = subprocess.run([sys.executable, str(TESTS / "kill_points.py"), point, str(config_file)],
                          cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _spy_epochs(monkeypatch):
    """Record which stage-1 and stage-2 epochs a run trains."""
    from recbole.trainer import Trainer

    from recbole_reg4rec.trainer import REG4RecTrainer

    seen = []
    stage1, stage2 = Trainer._train_epoch, REG4RecTrainer._alignment_epoch
    # RecBole's _train_epoch runs both stages; stage 2 passes its loss_func
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, data, e, *a, **k: (
        None if k.get("loss_func") else seen.append((1, e))) or stage1(self, data, e, *a, **k))
    monkeypatch.setattr(REG4RecTrainer, "_alignment_epoch", lambda self, data, e, *a, **k: seen.append((2, e)) or stage2(self, data, e, *a, **k))
    return seen


def test_sigkill_in_stage1_resumes_to_identical_results(workdir, reference, monkeypatch):
    config = _config(workdir, reference)
    _killed_run(workdir, "stage1", config)
    [best_file] = glob.glob("saved/REG4Rec-*.pth")
    last = load_checkpoint(last_checkpoint_path(best_file))
    assert last["kind"] == "last" and last["epoch"] == 0 and last["extra"]["stage"] == 1
    assert {"torch", "numpy", "python", "dataloader"} <= set(last["rng"])

    seen = _spy_epochs(monkeypatch)
    result = run_recbole(model="REG4Rec", dataset="tiny", config_dict=config, resume=best_file)
    assert seen == [(1, 1), (1, 2), (2, 3), (2, 4)]  # epoch 0 was not trained again
    assert_same_as_reference(result, best_file, reference)
    assert not os.path.exists(last_checkpoint_path(best_file))


def test_sigkill_in_stage2_resumes_through_the_cli(workdir, reference, monkeypatch):
    config = _config(workdir, reference)
    _killed_run(workdir, "stage2", config)
    [best_file] = glob.glob("saved/REG4Rec-*.pth")
    last = load_checkpoint(last_checkpoint_path(best_file))
    assert last["epoch"] == 3 and last["extra"]["stage"] == 2 and "reference_state_dict" in last["extra"]

    # the documented command: the same command line as the killed run, plus --resume
    Path("run.yaml").write_text(yaml.safe_dump(config))
    argv = ["--model=REG4Rec", "--dataset=tiny", "--config_files=run.yaml", f"--resume={best_file}"]
    monkeypatch.setattr("sys.argv", ["run_recbole.py", *argv])
    import recbole_reg4rec.quick_start as quick_start

    results = []
    original = quick_start.run_recbole
    monkeypatch.setattr(quick_start, "run_recbole", lambda *a, **k: results.append(original(*a, **k)) or results[-1])
    seen = _spy_epochs(monkeypatch)
    spec = __import__("importlib.util").util.spec_from_file_location("run_recbole_cli", REPO / "run_recbole.py")
    cli = __import__("importlib.util").util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main(argv) == 0
    assert seen == [(2, 4)]  # only the epoch that was cut off
    assert_same_as_reference(results[0], best_file, reference)


def test_sigkill_while_writing_token_cache_then_rerun(workdir, reference):
    config = _config(workdir, reference, tokenizer_cache_dir=str(workdir / "tokens"))
    _killed_run(workdir, "tokenizer", config)
    left = os.listdir(workdir / "tokens")
    assert left and not [f for f in left if f.endswith(".npz")]  # only the half-written temporary file
    assert not glob.glob("saved/*.pth")

    result = run_recbole(model="REG4Rec", dataset="tiny", config_dict=config)  # rerun the same command
    [best_file] = glob.glob("saved/REG4Rec-*.pth")
    assert_same_as_reference(result, best_file, reference)
    assert len(glob.glob(str(workdir / "tokens" / "*.npz"))) == 1


_BUILD = """
import sys, hashlib
sys.path.insert(0, {tests!r}); sys.argv = ["build"]
import torch; torch.set_num_threads(1)
import recbole_reg4rec
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole_reg4rec.tokenizer import build_semantic_ids
config = Config(model="REG4Rec", dataset="tiny", config_dict={config!r})
train, _, _ = data_preparation(config, create_dataset(config))
for _ in range(3):  # three builds per process: hits of the other process's file must verify too
    codes = build_semantic_ids(config, train._dataset).codes
    print(hashlib.sha256(codes.numpy().tobytes()).hexdigest(), flush=True)
"""


def test_two_processes_building_one_token_cache(workdir, reference):
    config = _config(workdir, reference, tokenizer_cache_dir=str(workdir / "shared_tokens"))
    script = _BUILD.format(tests=str(TESTS), config=config)
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=workdir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    hashes = {line for out, _ in outputs for line in out.split()}
    assert len(hashes) == 1  # every build and every cache hit gave the same tokens
    files = os.listdir(workdir / "shared_tokens")
    assert len(files) == 1 and files[0].endswith(".npz")  # no leftovers, one intact file
    assert "unreadable or corrupted" not in outputs[0][1] + outputs[1][1]
