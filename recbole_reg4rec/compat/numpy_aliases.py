"""Restore the numpy aliases RecBole 1.2.1 still reads.

numpy 1.24 removed ``np.float``, ``np.int``, ``np.bool`` ... and numpy 2 removed ``np.float_``
and ``np.unicode_``, which RecBole's ``Config.compatibility_settings`` uses to re-create the
former. The removed aliases always meant the Python builtins, so that is what we restore;
nothing else in numpy is touched.
"""

import numpy as np

_REMOVED_ALIASES = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "object": object,
    "str": str,
    "long": int,
    "unicode": str,
}


def restore_numpy_aliases() -> None:
    """Define every removed alias that is missing (idempotent, never overrides numpy)."""
    for name, builtin in _REMOVED_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)


def compatibility_settings(config) -> None:
    """Drop-in for ``recbole.config.Config.compatibility_settings`` (which fails on numpy 2)."""
    restore_numpy_aliases()


def install() -> None:
    """Restore the aliases now and route ``Config.compatibility_settings`` here (idempotent)."""
    restore_numpy_aliases()
    from recbole.config import Config

    Config.compatibility_settings = compatibility_settings
