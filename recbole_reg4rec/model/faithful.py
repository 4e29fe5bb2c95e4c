"""The paper-faithful REG4Rec: items are ranked by the reasoning over their tokens, with no item-ID head.

Our full :class:`~.reg4rec.REG4Rec` adds an item-ID softmax head (``item_fusion_weight``) that
scores items beside the token paths; the paper has none. ``REG4Rec_faithful`` is REG4Rec without
it (``item_fusion_weight: 0``, fixed), so the tokens are the only item-level parameters. Its
item-level score is then the composed item head (``composed_item_loss_weight: auto`` = 1.0 here):
the user state dotted with the sum of an item's token embeddings.

Because the tokens alone must tell items apart, its codebooks are finer than the full model's:
``codebook_size: 256`` (D), the codebook size of the TIGER paper's semantic IDs (our TIGER baseline
keeps 64, its validated size here), a default the configuration may change. On ml-100k validation prefers D = 256 to 64 for this model in 3 of 3
seeds (+0.0026 ± 0.0008 NDCG@10), while for the full model, whose ID head carries the per-item detail,
the gain is within the noise (+0.0001 ± 0.0034) and for TIGER negative
(``scripts/choose_on_validation.py``; results/codebook-size-ml-100k/README.md).
"""

from __future__ import annotations

from .variant import FixedVariant


class REG4Rec_faithful(FixedVariant):
    """REG4Rec with no item-ID head and finer codebooks (see module docstring)."""

    # properties/model/REG4Rec_faithful.yaml: item_fusion_weight is what defines the model (FIXED);
    # the codebook size is only its default.
    TUNABLE = ("codebook_size",)
