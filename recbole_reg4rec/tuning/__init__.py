"""Hyper-parameter sweeps on Ray Tune (entry point: ``run_hyper.py``).

* :mod:`.params` — RecBole's params-file format -> Ray Tune search space;
* :mod:`.trainable` — the per-trial RecBole run, reporting validation metrics every epoch;
* :mod:`.sweep` — validation of the inputs, the ``tune.Tuner`` run, result table and best config.

Ray is imported lazily: ``import recbole_reg4rec.tuning`` works without starting it.
"""

from .params import ParamsFileError, parse_params_file, parse_params_text, search_space
from .sweep import SweepError, SweepResult, SweepSettings, prepare, run_sweep

__all__ = [
    "ParamsFileError",
    "SweepError",
    "SweepResult",
    "SweepSettings",
    "parse_params_file",
    "parse_params_text",
    "prepare",
    "run_sweep",
    "search_space",
]
