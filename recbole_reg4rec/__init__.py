"""REG4Rec for RecBole: reasoning-enhanced generative sequential recommendation.

Importing this package

1. applies the compatibility layer that lets RecBole 1.2.1 run on numpy 2, pandas 3,
   torch >= 2.6 and current ray (:mod:`recbole_reg4rec.compat`), and
2. registers our models, trainers and dataset classes, so RecBole's own ``get_model``,
   ``get_trainer``, ``create_dataset``, ``run_recbole``, ``objective_function`` and
   ``load_data_and_model`` find them by name (:mod:`recbole_reg4rec.registry`).
"""

__version__ = "0.1.0"

from . import compat as _compat

_compat.apply()

from . import registry as _registry  # noqa: E402

_registry.install()

from . import model  # noqa: E402,F401  (registers the models)
from . import trainer  # noqa: E402,F401  (registers their trainers)
from .compat.checkpoints import (  # noqa: E402
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
)
from .quick_start import load_data_and_model, run, run_recbole  # noqa: E402

__all__ = [
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "load_checkpoint",
    "load_data_and_model",
    "run",
    "run_recbole",
]
