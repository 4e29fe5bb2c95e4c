"""Ablations of REG4Rec (docs/design.md §2 "Ablations and baseline"): the same model with one component removed.

Each is a :class:`~.variant.FixedVariant`: a registered RecBole model whose property file
(``properties/model/<name>.yaml``) holds the settings that define it, enforced by the class, so an
ablation cannot silently be run with its component switched back on.
"""

from __future__ import annotations

from .variant import FixedVariant


class REG4Rec_woMPQ(FixedVariant):
    """Product-quantization tokens (k-means per block of the same item features) instead of MPQ's:
    still M parallel, unordered tokens, so CRSS still chooses their order; only MPQ's experts,
    gate and orthogonality are gone (:mod:`recbole_reg4rec.tokenizer.product`)."""


class REG4Rec_woCRSS(FixedVariant):
    """Fixed codebook order 0..M-1 instead of confidence-based reasoning step selection."""


class REG4Rec_woPARS(FixedVariant):
    """Stage 1 only: no preference-alignment stage."""


class REG4Rec_woMSRA(FixedVariant):
    """Alignment rewards credit only the next item (MSRA horizon H = 0)."""


class REG4Rec_woCORP(FixedVariant):
    """Plain beam search: no catalogue or reflection pruning, no merging; items matched at the end.

    A plain search cannot read the catalogue, so it cannot be steered by the item prior either
    (the mass of a path's consistent items); compare it with :class:`REG4Rec_woSteering`, which
    keeps CORP and drops only that steering, to see what the catalogue pruning itself adds."""


class REG4Rec_woSteering(FixedVariant):
    """CORP beam search whose paths are ranked by their token scores alone: the ID head's item
    prior still enters the item scores but no longer decides which paths survive."""


ABLATIONS = (REG4Rec_woMPQ, REG4Rec_woCRSS, REG4Rec_woPARS, REG4Rec_woMSRA, REG4Rec_woCORP, REG4Rec_woSteering)
