"""Each REG4Rec stage (tokenizer, stage 1, stage 2) announces its budget and every epoch line says how far the stage is, how
long it has run and (an upper bound of) how long it may still take."""

from __future__ import annotations

import re

from recbole_reg4rec.quick_start import run_recbole
from recbole_reg4rec.trainer.progress import StageClock, format_duration
from synthetic import write_synthetic_dataset
from tiny_config import REG4REC_STAGE1


def test_format_duration():
    assert format_duration(8.4) == "8s"
    assert format_duration(75.2) == "1m15s"
    assert format_duration(3725) == "1h02m05s"


def test_eta_is_mean_epoch_time_times_epochs_left():
    clock = StageClock("Stage 1", first_epoch=0, end_epoch=10, started=100.0)
    # 4 epochs done in 160 s: 40 s each, 6 left -> 240 s
    assert clock.progress(3, now=260.0) == "Stage 1: epoch 4/10, elapsed 2m40s, ETA <= 4m00s"
    assert clock.progress(9, now=500.0) == "Stage 1: epoch 10/10, elapsed 6m40s"  # last epoch: no ETA
    stage2 = StageClock("Stage 2", first_epoch=10, end_epoch=12, started=0.0)
    assert stage2.progress(10, now=30.0) == "Stage 2: epoch 1/2, elapsed 30s, ETA <= 30s"


def test_a_short_run_logs_stage_budgets_and_epoch_progress(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    config = {**REG4REC_STAGE1, "data_path": str(workdir / "data"), "use_gpu": False, "epochs": 2,
              "stopping_step": 5, "pars_enabled": True, "pars_epochs": 1, "train_batch_size": 256}
    run_recbole(model="REG4Rec", dataset="toy", config_dict=config)
    [log_file] = (workdir / "log").rglob("*.log")  # RecBole's log file of the run (colours removed)
    text = log_file.read_text()
    assert "Tokenizer: mpq semantic IDs for 100 items (3 codebooks x 8 codewords, up to 5 epochs)" in text
    assert "Stage 1: supervised training: up to 2 epochs (early stopping after 5 without improvement of ndcg@10)" in text
    assert "Stage 2: preference alignment (PARS): up to 1 epochs" in text
    assert re.search(r"epoch 0 training .*\| Stage 1: epoch 1/2, elapsed \d+s, ETA <= \d+s", text), text
    assert re.search(r"epoch 1 training .*\| Stage 1: epoch 2/2, elapsed \d+s$", text, flags=re.M), text
    assert re.search(r"epoch 2 training .*\| Stage 2: epoch 1/1, elapsed \d+s", text), text
