"""Registered variants of REG4Rec: the same code, defined by a few settings of their own.

Each variant (the ablations, the paper-faithful model, TIGER) is a registered RecBole model with
its own property file (``properties/model/<name>.yaml``) holding the settings that define it. That
file is the one place those settings are written: the class reads them from it (``FIXED``) and
enforces them, so an ablation cannot silently be run with its component switched back on.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ..registry import read_properties
from .reg4rec import REG4Rec


class FixedVariant(REG4Rec):
    """REG4Rec with ``FIXED`` settings that the configuration must not contradict.

    ``FIXED`` is read from the subclass's own property file, ``properties/model/<class name>.yaml``,
    when the subclass is defined: every key there except those named in ``TUNABLE``.
    """

    FIXED: Dict[str, object] = {}
    #: Keys of the property file that are only defaults of the variant: the configuration may change them.
    TUNABLE: Tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        defaults = read_properties(f"model/{cls.__name__}.yaml")
        cls.FIXED = {key: value for key, value in defaults.items() if key not in cls.TUNABLE}

    def __init__(self, config, dataset):
        for key, value in self.FIXED.items():
            if config[key] != value:
                raise ValueError(
                    f"{type(self).__name__} is REG4Rec with {key} = {value!r} (that defines it), but the "
                    f"configuration sets {key} = {config[key]!r}. Remove that setting, or run model REG4Rec."
                )
        super().__init__(config, dataset)
