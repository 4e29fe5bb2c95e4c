"""recbole_reg4rec.studies.pars_sweep: the across-seed selection that the alignment study reports."""

import pandas as pd

from recbole_reg4rec.studies import pars_sweep as pars_sweep_report


def _rows(seed, stage1_valid, epochs):
    rows = [{"seed": seed, "variant": "stage-1", "epoch": 7, "valid_ndcg@10": stage1_valid, "test_ndcg@10": 0.050,
             "valid_recall@10": 0.1, "test_recall@10": 0.1, "settings": ""}]
    for epoch, (valid, test) in enumerate(epochs, 1):
        rows.append({"seed": seed, "variant": "v", "epoch": epoch, "valid_ndcg@10": valid, "test_ndcg@10": test,
                     "valid_recall@10": 0.1, "test_recall@10": 0.1, "settings": "k=1"})
    return rows


def test_selection_uses_validation_and_keeps_stage1_on_ties():
    frame = pd.DataFrame(
        _rows(2020, 0.060, [(0.061, 0.040), (0.065, 0.070)])  # stage 2 wins at epoch 2 (its test is read, not chosen)
        + _rows(2021, 0.060, [(0.060, 0.090), (0.055, 0.080)])  # a tie keeps stage 1 despite a better test
    )
    chosen = pars_sweep_report.selected_rows(frame).set_index("seed")
    assert bool(chosen.loc[2020, "stage2_selected"]) and chosen.loc[2020, "selected_epoch"] == 2
    assert chosen.loc[2020, "test_ndcg@10"] == 0.070
    assert not bool(chosen.loc[2021, "stage2_selected"]) and chosen.loc[2021, "test_ndcg@10"] == 0.050
    table = pars_sweep_report.report(frame)
    assert "| v | k=1 | 1/2 | " in table
    assert "+0.0100" in table  # mean test change: (0.020 + 0.000) / 2
