"""TIGER (Rajput et al., NeurIPS 2023): generative retrieval with residual semantic IDs.

The generative baseline RecBole lacks, built from REG4Rec's parts with TIGER's choices:
residual-quantised semantic IDs with a de-duplication token (``tokenizer: rq``), an
encoder-decoder that emits the codes in their fixed coarse-to-fine order, prefix-constrained
beam search (only prefixes of real items survive), no item-ID signal, no reasoning-order
selection, no self-reflection, no alignment stage.

Difference from the original, stated plainly: TIGER's encoder reads the history as the
sequence of all its items' codes (T·M tokens); ours reads one vector per item (the sum of its
code embeddings), as REG4Rec does. Same data, split and metrics as every other model here.
"""

from __future__ import annotations

from .variant import FixedVariant


class TIGER(FixedVariant):
    """TIGER baseline (see module docstring)."""

    # What defines TIGER is in properties/model/TIGER.yaml (read into FIXED); the size of its
    # codes is a default there that a configuration may change.
    TUNABLE = ("n_codebooks", "codebook_size")
