"""Compatibility layer that lets RecBole 1.2.1 run on today's Python stack.

Applied once by ``import recbole_reg4rec``. Scope, deliberately narrow:

* numpy 2: restore the removed aliases RecBole reads (``np.float`` ...), nothing else;
* pandas 3: RecBole's atomic-file loader and NaN filling, with errors naming file, line and fix
  (:mod:`.atomic_files`), and counts of what RecBole drops silently (:mod:`.data_checks`);
* config values of the wrong type are refused before anything loads (:mod:`.config_checks`);
* RecBole's default negative sampling is dropped for CE-loss sequential models, which RecBole
  otherwise refuses out of the box (:mod:`.loss_defaults`); both config fixes run through one
  hook in ``Config`` (:mod:`.config_hooks`);
* torch >= 2.6: checkpoints that load with ``weights_only=True``, carry RNG states and a
  per-epoch "last" file for resuming (:mod:`.checkpoints`); RecBole's pickled dataset /
  dataloader files are refused rather than unpickled (:mod:`.safe_pickles`);
* DDP on CPU via gloo (:mod:`.distributed`);
* ray >= 2.7: see :mod:`.ray_tune` (used by our sweep entry point, not patched into RecBole).

No file in site-packages is edited, no process-wide environment variable is set and pandas /
numpy behaviour is not changed beyond the aliases.
"""

import warnings

from . import atomic_files, checkpoints, config_checks, data_checks, distributed, loss_defaults, safe_pickles
from .numpy_aliases import compatibility_settings, restore_numpy_aliases

_APPLIED = False


def apply() -> None:
    """Install every fix (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    restore_numpy_aliases()
    from recbole.config import Config

    Config.compatibility_settings = compatibility_settings
    atomic_files.install()
    data_checks.install()
    config_checks.install()
    loss_defaults.install()
    checkpoints.install()
    safe_pickles.install()
    distributed.install()
    _silence_recbole_inplace_deprecations()
    _APPLIED = True


def _silence_recbole_inplace_deprecations() -> None:
    """pandas >= 3.1 warns on every ``inplace=True`` RecBole uses (still correct for whole
    frames); hide those warnings for RecBole's own modules only."""
    try:
        from pandas.errors import Pandas4Warning
    except ImportError:  # pandas < 3.1
        return
    warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"recbole\.")
