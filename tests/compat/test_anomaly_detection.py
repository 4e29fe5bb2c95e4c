"""RecBole's SINE module must not leave autograd anomaly detection on for our runs."""

import torch

import recbole_reg4rec  # noqa: F401  (applies the compat patches)
from recbole_reg4rec.compat import anomaly_detection


def test_getting_a_model_leaves_anomaly_detection_off():
    from recbole.utils import get_model

    get_model("SINE")  # imports sine.py, whose import switched detection on process-wide
    assert get_model("REG4Rec") is not None
    assert not torch.is_anomaly_enabled()


def test_a_users_own_choice_is_kept():
    torch.autograd.set_detect_anomaly(True)
    try:
        anomaly_detection.install()
        assert torch.is_anomaly_enabled()
    finally:
        torch.autograd.set_detect_anomaly(False)
