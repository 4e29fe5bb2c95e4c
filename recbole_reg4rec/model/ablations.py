"""Ablations of REG4Rec (docs/design.md §2 "Ablations and baseline"): the same model with one component removed.

Each is a registered RecBole model with its own property file (``properties/model/<name>.yaml``)
holding the settings that define it; the code is REG4Rec's. That file is the one place those
settings are written: the class reads them from it (``FIXED``) and enforces them, so an
ablation cannot silently be run with its component switched back on.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ..registry import read_properties
from .reg4rec import REG4Rec


class _Ablation(REG4Rec):
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
                    f"{type(self).__name__} is REG4Rec with {key} = {value!r} (that is the ablation), but the "
                    f"configuration sets {key} = {config[key]!r}. Remove that setting, or run model REG4Rec."
                )
        super().__init__(config, dataset)


class REG4Rec_woMPQ(_Ablation):
    """Product-quantization tokens (k-means per block of the same item features) instead of MPQ's:
    still M parallel, unordered tokens, so CRSS still chooses their order; only MPQ's experts,
    gate and orthogonality are gone (:mod:`recbole_reg4rec.tokenizer.product`)."""


class REG4Rec_woCRSS(_Ablation):
    """Fixed codebook order 0..M-1 instead of confidence-based reasoning step selection."""


class REG4Rec_woPARS(_Ablation):
    """Stage 1 only: no preference-alignment stage."""


class REG4Rec_woMSRA(_Ablation):
    """Alignment rewards credit only the next item (MSRA horizon H = 0)."""


class REG4Rec_woCORP(_Ablation):
    """Plain beam search: no catalogue or reflection pruning, no merging; items matched at the end.

    A plain search cannot read the catalogue, so it cannot be steered by the item prior either
    (the mass of a path's consistent items); compare it with :class:`REG4Rec_woSteering`, which
    keeps CORP and drops only that steering, to see what the catalogue pruning itself adds."""


class REG4Rec_woSteering(_Ablation):
    """CORP beam search whose paths are ranked by their token scores alone: the ID head's item
    prior still enters the item scores but no longer decides which paths survive."""


ABLATIONS = (REG4Rec_woMPQ, REG4Rec_woCRSS, REG4Rec_woPARS, REG4Rec_woMSRA, REG4Rec_woCORP, REG4Rec_woSteering)
