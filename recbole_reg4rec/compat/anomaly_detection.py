"""Keep autograd anomaly detection off unless the user turned it on.

RecBole 1.2.1's ``sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)``
at import time, and ``recbole.utils.get_model`` imports every sequential model, so every training
run afterwards checks every backward output for NaN (an ``isnan`` + ``any`` per autograd node):
measured on one CPU thread, a SASRec training batch takes 2.3 x as long with it (0.107 s against
0.046 s at 2,000 items, hidden 64), a REG4Rec batch 2.5 x. We import that module once here and
restore the setting it overwrote.
"""

import warnings

import torch


def install() -> None:
    """Import RecBole's sequential models now and undo SINE's process-wide switch (idempotent)."""
    previous = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    with warnings.catch_warnings():
        # recbole's dien.py docstrings hold '\p': compiled on first import (a fresh install), Python warns
        # (DeprecationWarning up to 3.11, SyntaxWarning from 3.12) — triggered here by our import, not the user's
        for category in (DeprecationWarning, SyntaxWarning):
            warnings.filterwarnings("ignore", message="invalid escape sequence", category=category)
        import recbole.model.sequential_recommender  # noqa: F401  (sine.py switches detection on)

    torch.autograd.set_detect_anomaly(*previous)
