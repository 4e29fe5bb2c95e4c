"""The catalogue's semantic IDs: the contract between tokenizers and generators.

Every tokenizer (MPQ, residual) produces one :class:`SemanticIDs`; every generative model
(REG4Rec, its ablations, TIGER) consumes one. Nothing else about a tokenizer leaks out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch


@dataclass(frozen=True)
class SemanticIDs:
    """Tokens of every item of a RecBole dataset.

    Attributes:
        codes: ``[n_items, M]`` long tensor. Row ``i`` holds item ``i``'s token on each codebook,
            in ``[0, codebook_sizes[r])``. Row 0 is RecBole's padding item: it holds the
            per-codebook *pad code* ``codebook_sizes[r]`` (one past the last real token), so an
            embedding table of ``codebook_sizes[r] + 1`` rows can use it as ``padding_idx``.
        codebook_sizes: ``(D_1, ..., D_M)``, number of real tokens per codebook. They may
            differ (e.g. the de-duplication codebook of a residual tokenizer).
        ordered: ``False`` for MPQ (the M tokens are an unordered set), ``True`` for residual
            tokenizers (codebook ``r`` refines ``r - 1``; generators must follow that order).
    """

    codes: torch.Tensor
    codebook_sizes: Tuple[int, ...]
    ordered: bool

    def __post_init__(self) -> None:
        if self.codes.dim() != 2 or self.codes.dtype != torch.long:
            raise ValueError(f"codes must be a 2-D long tensor, got {tuple(self.codes.shape)} {self.codes.dtype}")
        if self.codes.size(1) != len(self.codebook_sizes):
            raise ValueError(
                f"codes has {self.codes.size(1)} codebooks but codebook_sizes has {len(self.codebook_sizes)}"
            )
        pad = torch.tensor(self.codebook_sizes, dtype=torch.long)
        if not torch.equal(self.codes[0], pad):
            raise ValueError("row 0 (padding item) must hold the pad code codebook_sizes[r] on every codebook")
        real = self.codes[1:]
        if real.numel() and (bool((real < 0).any()) or bool((real >= pad).any())):
            raise ValueError("item tokens must lie in [0, codebook_sizes[r]) on every codebook")

    @property
    def n_items(self) -> int:
        """Number of rows, padding item included (= RecBole's ``dataset.item_num``)."""
        return self.codes.size(0)

    @property
    def n_codebooks(self) -> int:
        """M, the number of tokens per item."""
        return self.codes.size(1)

    @property
    def pad_codes(self) -> torch.Tensor:
        """``[M]`` long tensor of per-codebook pad codes (``codebook_sizes``)."""
        return torch.tensor(self.codebook_sizes, dtype=torch.long)

    def to(self, device: torch.device | str) -> "SemanticIDs":
        return SemanticIDs(self.codes.to(device), self.codebook_sizes, self.ordered)
