"""The benchmark harness (reg4rec.py benchmark, recbole_reg4rec.benchmark) on tiny synthetic data.

One module-scoped benchmark (Pop + SASRec, two seeds, one epoch) is run once; the tests check
its files, recompute its summary and paired differences by hand from runs.csv, then delete /
kill cells and check that a rerun redoes exactly those. Pure-function tests cover the
``--models`` / ``--steps`` syntax, configuration priority and the steps plot.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


import pandas as pd
import pytest
import yaml

import recbole_reg4rec.benchmark

from recbole_reg4rec.benchmark.protocol import (
    PROTOCOL,
    BenchmarkError,
    ModelSpec,
    Profile,
    cell_settings,
    expand_steps,
    load_profile,
    parse_models,
    parse_overrides,
    parse_steps,
    seeds_for,
)
from recbole_reg4rec.benchmark import harness
from recbole_reg4rec.benchmark import request as benchmark_request
from recbole_reg4rec.benchmark.harness import plan_cells
from recbole_reg4rec.benchmark.report import plot_steps, runs_frame, summarize, summary_markdown
from recbole_reg4rec.benchmark.runner import check_reasoning_steps, run_cell
from recbole_reg4rec.benchmark.store import ResultStore, cell_id
from recbole_reg4rec.registry import get_model
from entry_points import load_entry_point
from synthetic import write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
reg4rec_cli = load_entry_point("reg4rec")


def benchmark_main(argv):
    """``reg4rec.py benchmark ARGV``, in this process."""
    return reg4rec_cli.main(["benchmark", *argv])


def make_request(argv):
    """The request ``reg4rec.py benchmark ARGV`` would run."""
    return benchmark_request.make_request(reg4rec_cli.parse_args(["benchmark", *argv]))

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY_PROFILE = """\
shared:
  MAX_ITEM_LIST_LENGTH: 10
  hidden_size: 16
  embedding_size: 16
  inner_size: 32
  n_layers: 1
  n_heads: 1
  train_batch_size: 256
  eval_batch_size: 256
  epochs: 1
  show_progress: False
models:
  SASRec: {hidden_size: 12}
"""


def _argv(root: Path) -> list:
    return [
        "--dataset=toy", "--models=Pop,SASRec", "--seeds=2", f"--profile={root / 'tiny.yaml'}",
        f"--output={root / 'out'}", f"--data_path={root / 'data'}",
        "--load_col={inter: [user_id, item_id, rating, timestamp]}", "--state=WARNING", "--use_gpu=False",
    ]


def _run_ids(out: Path) -> dict:
    return {p.stem: json.loads(p.read_text())["run_id"] for p in sorted((out / "cells").glob("*.json"))}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A finished 2-model x 2-seed benchmark; yields its root folder (cwd during the module)."""
    root = tmp_path_factory.mktemp("bench")
    write_synthetic_dataset(root / "data", "toy", with_item_file=False)
    (root / "tiny.yaml").write_text(TINY_PROFILE)
    old_cwd, old_argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = ["pytest"]
    try:
        rc = benchmark_main(_argv(root))
        assert rc == 0
        yield root
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv


# --------------------------------------------------------------------------- outputs


def test_outputs_have_one_row_per_cell(bench):
    out = bench / "out"
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(zip(runs["label"], runs["seed"])) == [("Pop", 2020), ("Pop", 2021), ("SASRec", 2020), ("SASRec", 2021)]
    assert set(runs["kind"]) == {"builtin"} and set(runs["dataset"]) == {"toy"}
    for col in ("test_ndcg@10", "test_recall@20", "test_mrr@5", "test_hit@10", "valid_ndcg@10"):
        assert runs[col].between(0, 1).all(), col
    assert (runs["epochs_trained"] == 1).all()
    assert (runs["train_s_per_epoch"] > 0).all() and (runs["eval_s"] > 0).all()
    assert (runs["peak_rss_mb"] > 50).all()
    assert (runs["device"] == "cpu").all()
    # one config hash per model, the same for both seeds (seed is not part of it)
    assert runs.groupby("label")["config_hash"].nunique().eq(1).all()
    assert runs["config_hash"].nunique() == 2

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["label"]) == ["Pop", "SASRec"]
    assert list(summary["n_seeds"]) == [2, 2]

    md = (out / "summary.md").read_text()
    assert "| Pop " in md and "| SASRec " in md
    assert "Paired differences against the best baseline" in md
    assert "SASRec: {'hidden_size': 12}" in md  # per-model profile settings are reported

    for png in ("metrics_bar.png",):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert not (out / "steps_ndcg10.png").exists()  # no --steps, no L-plot

    env = json.loads((out / "environment.json").read_text())
    assert "--models=Pop,SASRec" in env["command"] and env["versions"]["recbole"] == "1.2.1"
    assert "command" in (out / "environment.md").read_text()
    log = (out / "benchmark.log").read_text()
    assert "[1/4] Pop seed 2020 ..." in log and "[2/4] SASRec seed 2020 ..." in log and "[4/4] SASRec seed 2021 ..." in log


def test_each_cell_used_protocol_profile_and_seed(bench):
    store = ResultStore(bench / "out")
    sas = store.load(cell_id("SASRec", 2021))
    pop = store.load(cell_id("Pop", 2020))
    assert sas["config"]["seed"] == 2021 and pop["config"]["seed"] == 2020
    assert sas["config"]["hidden_size"] == 12  # profile models.SASRec beats shared (16)
    assert sas["config"]["MAX_ITEM_LIST_LENGTH"] == 10
    assert sas["config"]["valid_metric"] == "NDCG@10"
    assert sas["config"]["topk"] == [5, 10, 20]
    assert "'LS': 'valid_and_test'" in str(sas["config"]["eval_args"]) or sas["config"]["eval_args"]["split"] == {"LS": "valid_and_test"}
    assert sas["config"]["eval_args"]["order"] == "TO"
    assert [e[:2] for e in sas["epoch_times"]] == [[0, 1]] and sas["epoch_times"][0][2] == pytest.approx(sas["train_s_total"])
    assert sas["cell_s"] >= sas["fit_s"] + sas["eval_s"] + sas["model_init_s"]
    assert sas["checkpoint"] is None and not any((bench / "out" / "saved").glob("*.pth"))


def test_summary_and_paired_differences_match_hand_computation(bench):
    out = bench / "out"
    runs = pd.read_csv(out / "runs.csv")
    summary = pd.read_csv(out / "summary.csv").set_index("label")
    for label in ("Pop", "SASRec"):
        vals = runs.loc[runs["label"] == label, "test_ndcg@10"].tolist()
        mean = sum(vals) / 2
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (2 - 1))
        assert summary.loc[label, "test_ndcg@10_mean"] == pytest.approx(mean)
        assert summary.loc[label, "test_ndcg@10_std"] == pytest.approx(std)

    means = runs.groupby("label")["test_ndcg@10"].mean()
    baseline = means.idxmax()
    other = "Pop" if baseline == "SASRec" else "SASRec"
    paired = pd.read_csv(out / "paired.csv")
    assert list(paired["label"]) == [other] and set(paired["baseline"]) == {baseline}
    for metric in ("ndcg@10", "recall@10", "recall@20"):
        by_seed = runs.pivot(index="seed", columns="label", values=f"test_{metric}")
        diffs = [by_seed.loc[s, other] - by_seed.loc[s, baseline] for s in (2020, 2021)]
        mean = sum(diffs) / 2
        std = math.sqrt(sum((d - mean) ** 2 for d in diffs))
        row = paired.iloc[0]
        assert row[f"{metric}_diff_mean"] == pytest.approx(mean, abs=1e-12)
        assert row[f"{metric}_diff_std"] == pytest.approx(std, abs=1e-12)
    ratio = runs.loc[runs["label"] == other, "train_s_per_epoch"].mean() / runs.loc[runs["label"] == baseline, "train_s_per_epoch"].mean()
    assert paired.iloc[0]["train_s_per_epoch_ratio"] == pytest.approx(ratio)
    assert f"best baseline: {baseline}" in (out / "summary.md").read_text()


# --------------------------------------------------------------------------- resume


def test_rerun_redoes_only_a_missing_cell(bench, capsys):
    """... and the redone cell (same seed, a new run) reproduces the lost one's metrics exactly."""
    out = bench / "out"
    before = _run_ids(out)
    lost = cell_id("SASRec", 2020)
    first = pd.read_csv(out / "runs.csv").set_index("cell_id").loc[lost]
    (out / "cells" / f"{lost}.json").unlink()
    (out / "cells" / f".{lost}.json.abc.tmp").write_text('{"status": "ok", "trunc')  # a write cut short

    assert benchmark_main(_argv(bench)) == 0
    after = _run_ids(out)
    assert set(after) == set(before)
    assert after[lost] != before[lost]  # redone
    assert {k: v for k, v in after.items() if k != lost} == {k: v for k, v in before.items() if k != lost}
    printed = capsys.readouterr().out
    assert printed.count("finished earlier") == 3 and "[2/4] SASRec seed 2020 ..." in printed
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4
    again = runs.set_index("cell_id").loc[lost]
    metrics = [c for c in runs.columns if c.startswith(("test_", "valid_")) and "@" in c]
    assert len(metrics) >= 8
    assert again[metrics].tolist() == first[metrics].tolist()  # same seed, same numbers
    assert again["config_hash"] == first["config_hash"] and again["run_id"] != first["run_id"]


def test_cells_run_at_once_give_the_numbers_of_cells_run_one_by_one(bench, tmp_path):
    """--jobs=4: all four cells at the same time, each in its own checkpoint folder, same metrics."""
    argv = [a if not a.startswith("--output=") else f"--output={tmp_path / 'parallel'}" for a in _argv(bench)]
    assert benchmark_main(argv + ["--jobs=4", "--keep_checkpoints"]) == 0
    one_by_one = pd.read_csv(bench / "out" / "runs.csv").set_index("cell_id")
    at_once = pd.read_csv(tmp_path / "parallel" / "runs.csv").set_index("cell_id")
    assert sorted(at_once.index) == sorted(one_by_one.index)
    metrics = [c for c in at_once.columns if c.startswith(("test_", "valid_")) and "@" in c]
    assert at_once.loc[one_by_one.index, metrics].equals(one_by_one[metrics])
    saved = sorted(p.parent.name for p in (tmp_path / "parallel" / "saved").glob("*/*.pth"))
    assert saved == sorted(at_once.index)  # one folder per cell, each with its own best model
    log = (tmp_path / "parallel" / "benchmark.log").read_text()
    assert log.count(" ...") == 4 and "benchmark finished: 4 run" in log


def test_changed_settings_are_not_taken_as_finished(bench):
    """Cells count as finished only for the same request; display-only flags do not matter."""
    store = ResultStore(bench / "out")

    def cells(extra):
        return plan_cells(make_request(_argv(bench) + extra))

    assert all(store.is_done(c.cid, c.request["spec_hash"]) for c in cells([]))
    assert all(store.is_done(c.cid, c.request["spec_hash"]) for c in cells(["--show_progress=True"]))
    assert not any(store.is_done(c.cid, c.request["spec_hash"]) for c in cells(["--learning_rate=0.01"]))


def test_changed_model_defaults_are_not_taken_as_finished(workdir, monkeypatch):
    """Our models' defaults live in properties/: a cell run under other defaults is redone, although
    the request reads the same; cells recorded before defaults were tracked still count."""
    import recbole_reg4rec.registry as registry

    defaults = workdir / "REG4Rec.yaml"
    defaults.write_text("pars_token_temperature: 1.0\n")
    monkeypatch.setitem(registry._PROPERTY_FILES, "REG4Rec", [defaults])
    request = make_request(["--models=REG4Rec,SASRec", "--seeds=1", f"--output={workdir / 'out'}"])
    reg4rec, sasrec = plan_cells(request)
    store = ResultStore(workdir / "out")
    for cell in (reg4rec, sasrec):
        store.save(cell.cid, {"status": "ok", "spec_hash": cell.request["spec_hash"],
                              "defaults_hash": cell.request["defaults_hash"]})
    assert store.is_done(reg4rec.cid, reg4rec.request["spec_hash"], reg4rec.request["defaults_hash"])

    defaults.write_text("pars_token_temperature: 0.5\n")
    reg4rec2, sasrec2 = plan_cells(request)
    assert reg4rec2.request["spec_hash"] == reg4rec.request["spec_hash"]
    assert not store.is_done(reg4rec2.cid, reg4rec2.request["spec_hash"], reg4rec2.request["defaults_hash"])
    assert store.is_done(sasrec2.cid, sasrec2.request["spec_hash"], sasrec2.request["defaults_hash"])  # built-in
    # --report_only runs nothing: it reports the cell as recorded, a run would redo it
    assert not harness._is_done(store, reg4rec2) and harness._is_done(store, reg4rec2, report_only=True)
    store.save(reg4rec.cid, {"status": "ok", "spec_hash": reg4rec.request["spec_hash"]})  # an older record
    assert store.is_done(reg4rec2.cid, reg4rec2.request["spec_hash"], reg4rec2.request["defaults_hash"])


def test_killed_run_resumes_without_redoing_finished_cells(bench):
    out = bench / "out"
    killed = [cell_id("Pop", 2021), cell_id("SASRec", 2021)]
    for cid in killed:
        (out / "cells" / f"{cid}.json").unlink()
    finished = _run_ids(out)
    assert len(finished) == 2

    cmd = [sys.executable, str(REPO / "reg4rec.py"), "benchmark", *_argv(bench)]
    proc = subprocess.Popen(cmd, cwd=bench, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "cells" / f"{killed[0]}.json"
    deadline = time.time() + 180
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the benchmark and its running cell die mid-way
    proc.wait()
    assert first.exists(), "the first cell should have finished before the kill"
    assert not (out / "cells" / f"{killed[1]}.json").exists(), "the second cell was killed mid-way"
    interrupted = _run_ids(out)

    done = subprocess.run(cmd, cwd=bench, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _run_ids(out)
    assert set(after) == set(finished) | set(killed)
    for cid in interrupted:  # finished before the kill: untouched
        assert after[cid] == interrupted[cid]
    assert done.stdout.count("finished earlier") == 3
    assert "[4/4] SASRec seed 2021 ..." in done.stdout and "1 run, 3 skipped" in done.stdout
    assert len(pd.read_csv(out / "runs.csv")) == 4


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models=SASRec,NoSuchModel"], "Unknown model 'NoSuchModel'. Available models:"),
        (["--models=SASRec", "--seeds=0"], "--seeds must be a positive integer"),
        (["--models=SASRec", "--seeds=two"], "--seeds must be a positive integer"),
        (["--models=SASRec", "--profile=nope"], "Unknown profile 'nope'. Available profiles: converged, full, quick"),
        (["--models=SASRec[hidden_size]"], "neither key=value nor @file.yaml"),
        (["--models=SASRec", "--steps=1-3"], "--steps needs a model of --steps_models (REG4Rec)"),
        (["--models=SASRec", "--steps=1-3", "--steps_models=SASRec"], "SASRec has no reasoning_steps setting"),
        (["--models=SASRec", "--config_files=missing.yaml"], "--config_files not found"),
        (["--models=SASRec", "stray"], "Unrecognised argument 'stray'"),
        (["--models=SASRec", "--jobs=0"], "--jobs must be at least 1"),
    ],
)
def test_bad_input_exits_2_before_running(workdir, capsys, args, message):
    assert benchmark_main([f"--output={workdir / 'out'}", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (workdir / "out").exists()


def test_bad_input_from_the_shell_has_no_traceback(workdir):
    result = subprocess.run(
        [sys.executable, str(REPO / "reg4rec.py"), "benchmark", "--models=NoSuchModel", f"--output={workdir / 'out'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "Unknown model 'NoSuchModel'" in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "out").exists()


# --------------------------------------------------------------------------- syntax and priority


def test_model_entries_variants_and_labels(tmp_path):
    settings = tmp_path / "fused.yaml"
    settings.write_text("hidden_size: 8\nitem_fusion_weight: 0.5\n")
    specs = parse_models(f"SASRec, SASRec[hidden_size=32,topk=[5,10]], small=GRU4Rec[@{settings}]", get_model)
    assert [s.label for s in specs] == ["SASRec", "SASRec[hidden_size=32,topk=[5,10]]", "small"]
    assert specs[1].settings_dict == {"hidden_size": 32, "topk": [5, 10]}
    assert specs[2].model == "GRU4Rec" and specs[2].settings_dict == {"hidden_size": 8, "item_fusion_weight": 0.5}
    with pytest.raises(BenchmarkError, match="appear twice"):
        parse_models("SASRec,SASRec", get_model)
    with pytest.raises(BenchmarkError, match="Cannot read model entry"):
        parse_models("SAS Rec", get_model)


def test_steps_sweep_marks_only_stepped_models():
    assert parse_steps("1-3,5") == [1, 2, 3, 5] and parse_steps(None) == []
    with pytest.raises(BenchmarkError):
        parse_steps("0-2")
    specs = [ModelSpec("R", "REG4Rec", (("item_fusion_weight", 0),)), ModelSpec("SASRec", "SASRec")]
    out = expand_steps(specs, [2, 1], lambda m: m == "REG4Rec")
    # one cell per entry: L is an inference setting, evaluated on the one trained model
    assert [(s.label, s.eval_steps) for s in out] == [("R", (1, 2)), ("SASRec", ())]
    assert out[0].settings_dict == {"item_fusion_weight": 0}


def test_steps_option_marks_the_named_models_only(workdir):
    request = make_request(["--models=REG4Rec,f=REG4Rec[item_fusion_weight=0],SASRec", "--steps=1,3", "--seeds=1"])
    assert [(s.label, s.eval_steps) for s in request.specs] == [("REG4Rec", (1, 3)), ("f", (1, 3)), ("SASRec", ())]
    cells = plan_cells(request)
    assert [c.request["eval_steps"] for c in cells] == [[1, 3], [1, 3], []]
    plain = plan_cells(make_request(["--models=REG4Rec,SASRec", "--seeds=1"]))
    # asking for L rows changes the REG4Rec cell's identity (it must be evaluated again), not SASRec's
    assert plain[0].request["spec_hash"] != cells[0].request["spec_hash"]
    assert plain[1].request["spec_hash"] == cells[2].request["spec_hash"]


def test_reasoning_steps_are_checked_before_training():
    class Generator:
        n_codebooks, reasoning_steps = 3, 3

    check_reasoning_steps(Generator(), [1, 3])
    with pytest.raises(ValueError, match=r"L = \[4\] outside 1..M = 3"):
        check_reasoning_steps(Generator(), [1, 4])
    with pytest.raises(ValueError, match="has no reasoning_steps setting"):
        check_reasoning_steps(object(), [1])


def test_one_trained_model_is_evaluated_at_every_L(workdir):
    from tiny_config import REG4REC_STAGE1 as FAST

    write_synthetic_dataset(workdir / "data", "toy")
    request = {
        "cell_id": "REG4Rec__seed2020", "label": "REG4Rec", "model": "REG4Rec", "kind": "ours", "seed": 2020,
        "dataset": "toy", "eval_steps": [1, 3],
        "config_dict": {**FAST, "epochs": 1, "data_path": str(workdir / "data"), "use_gpu": False,
                        "checkpoint_dir": str(workdir / "saved"), "state": "WARNING"},
    }
    record = run_cell(request)
    by_l = {r["steps"]: r for r in record["steps_results"]}
    assert sorted(by_l) == [1, 3] and record["epochs_trained"] == 1  # trained once
    for result in by_l.values():
        assert result["test"]["ndcg@10"] > 0 and result["eval_s"] > 0
    # L = M = 3 is the model's own setting: the same numbers as the cell's test evaluation
    assert by_l[3]["test"] == pytest.approx(record["test"])
    runs = runs_frame([record])
    assert list(runs["label"]) == ["REG4Rec", "REG4Rec@L=1", "REG4Rec@L=3"]
    assert runs["steps"].tolist()[1:] == [1, 3] and runs["train_s_per_epoch"].nunique() == 1
    assert runs.loc[1, "test_ndcg@10"] == by_l[1]["test"]["ndcg@10"]


def test_cell_settings_priority_and_seeds():
    profile = Profile("p", Path("p.yaml"), shared={"hidden_size": 16, "epochs": 3}, models={"SASRec": {"hidden_size": 12}})
    spec = ModelSpec("v", "SASRec", (("epochs", 7),))
    base, top = cell_settings(spec, profile, parse_overrides(["--epochs=5", "--learning_rate=0.01"]), seed=2021)
    assert base["hidden_size"] == 12 and base["valid_metric"] == "NDCG@10" and base["train_neg_sample_args"] is None
    assert base["eval_args"] == PROTOCOL["eval_args"]
    assert top == {"epochs": 7, "learning_rate": 0.01, "seed": 2021}  # variant > --key=value
    assert seeds_for(3) == [2020, 2021, 2022]
    quick = load_profile("quick")
    shipped = yaml.safe_load((Path(recbole_reg4rec.benchmark.__file__).parent / "profiles" / "quick.yaml").read_text())
    assert quick.shared["MAX_ITEM_LIST_LENGTH"] == shipped["shared"]["MAX_ITEM_LIST_LENGTH"]
    assert quick.models["REG4Rec"]["epochs"] + quick.models["REG4Rec"]["pars_epochs"] == quick.shared["epochs"]
    assert load_profile("full").shared["epochs"] > load_profile("quick").shared["epochs"]


def test_converged_profile_is_quick_sizes_with_the_reasoning_protocol():
    """Same sizes as "quick" (so its cells compare with them), patience >= 5 and a cap early stopping ends."""
    quick, converged = load_profile("quick"), load_profile("converged")
    budget_keys = {"epochs", "stopping_step", "show_progress"}
    assert {k: v for k, v in converged.shared.items() if k not in budget_keys} == \
        {k: v for k, v in quick.shared.items() if k not in budget_keys}
    assert converged.shared["stopping_step"] >= 5 and converged.shared["epochs"] >= 4 * quick.shared["epochs"]
    assert all(settings == {"pars_epochs": 4} for settings in converged.models.values())


def test_profile_may_not_change_the_protocol(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("shared:\n  valid_metric: Recall@10\n")
    with pytest.raises(BenchmarkError, match="protocol keys"):
        load_profile(str(bad))


def test_steps_plot_and_table_from_records(tmp_path):
    def record(label, steps, seed, ndcg):
        metrics = {"ndcg@10": ndcg, "recall@10": 2 * ndcg}
        return {"label": label, "model": "REG4Rec", "kind": "ours", "seed": seed, "steps": steps,
                "epochs_trained": 1, "train_s_per_epoch": 1.0, "eval_s": 0.1, "peak_rss_mb": 100.0,
                "valid": metrics, "test": metrics}

    records = [record(f"REG4Rec@L={L}", L, s, 0.01 * L + 0.001 * s) for L in (1, 2, 3) for s in (0, 1)]
    records += [record(f"faithful@L={L}", L, s, 0.005 * L) for L in (1, 2, 3) for s in (0, 1)]  # same model, other entry
    summary = summarize(runs_frame(records))
    assert list(summary["steps"]) == [1, 2, 3, 1, 2, 3]
    assert summary["test_ndcg@10_mean"].tolist()[:3] == pytest.approx([0.0105, 0.0205, 0.0305])
    png = plot_steps(summary, tmp_path / "steps.png")
    assert png is not None and png.read_bytes()[:8] == PNG_MAGIC
    md = summary_markdown(summary, None, None, "# t")
    assert "## Reasoning steps L" in md and "no baseline" in md
    steps_table = md.split("## Reasoning steps L")[1]
    assert "| faithful " in steps_table and "| REG4Rec " in steps_table  # rows named by entry, not by model


def test_report_only_writes_tables_from_finished_cells_and_runs_nothing(bench, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(bench / "out", out)
    (out / "summary.md").unlink()
    (out / "cells" / next(p.name for p in (out / "cells").glob("SASRec*2021*.json"))).unlink()  # an unfinished cell
    before = _run_ids(out)
    argv = [a if not a.startswith("--output=") else f"--output={out}" for a in _argv(bench)] + ["--report_only"]
    assert benchmark_main(argv) == 0
    assert _run_ids(out) == before  # nothing ran
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 3
    summary = (out / "summary.md").read_text()
    assert "SASRec seed 2021 (not run)" in summary
