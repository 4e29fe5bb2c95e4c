"""Quality report of a catalogue's semantic IDs: a table for the log and scalars for tensorboard."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class TokenizerReport:
    """Diagnostics of one tokenization (real items only; padding excluded).

    Attributes:
        tokenizer: ``mpq`` or ``rq``.
        n_items: real items tokenized.
        codebook_sizes: ``(D_1..D_M)``.
        usage: per codebook, share of its codewords used by at least one item.
        perplexity: per codebook, ``exp(entropy)`` of its token distribution (D = perfectly even).
        unique_share: share of items whose full token set no other item has.
        largest_collision: size of the largest group of items sharing a full token set.
        recon_error: relative reconstruction error (``nan`` when not applicable).
        latent_abs_cos: mean |cosine| between distinct expert latents of the same item (``nan`` if n/a).
        extra: other numbers worth logging (feature source, timings, cache use).
    """

    tokenizer: str
    n_items: int
    codebook_sizes: Sequence[int]
    usage: List[float]
    perplexity: List[float]
    unique_share: float
    largest_collision: int
    recon_error: float = float("nan")
    latent_abs_cos: float = float("nan")
    extra: Dict[str, object] = field(default_factory=dict)

    def table(self) -> str:
        """Human-readable report: a summary block and one row per codebook."""
        lines = [
            f"semantic IDs ({self.tokenizer}): {self.n_items} items x {len(self.codebook_sizes)} codebooks",
            f"  unique full token sets    : {100 * self.unique_share:.2f} %",
            f"  largest collision group   : {self.largest_collision}",
            f"  reconstruction error (rel): {_fmt(self.recon_error)}",
            f"  mean |cos| expert latents : {_fmt(self.latent_abs_cos)}",
        ]
        lines += [f"  {k:<26}: {v}" for k, v in self.extra.items()]
        lines.append(f"  {'codebook':>8} {'size':>6} {'used %':>7} {'perplexity':>10} {'perp/size':>9}")
        for r, size in enumerate(self.codebook_sizes):
            lines.append(
                f"  {r:>8} {size:>6} {100 * self.usage[r]:>7.1f} {self.perplexity[r]:>10.1f} "
                f"{self.perplexity[r] / size:>9.2f}"
            )
        return "\n".join(lines)

    def scalars(self) -> Dict[str, float]:
        """Flat name -> value map for tensorboard."""
        out = {
            "unique_share": self.unique_share,
            "largest_collision": float(self.largest_collision),
            "recon_error": self.recon_error,
            "latent_abs_cos": self.latent_abs_cos,
        }
        for r in range(len(self.codebook_sizes)):
            out[f"perplexity/codebook_{r}"] = self.perplexity[r]
            out[f"usage/codebook_{r}"] = self.usage[r]
        return {k: float(v) for k, v in out.items() if not np.isnan(v)}

    def log(self, logger: logging.Logger, writer=None, tag: str = "tokenizer") -> None:
        """Log the table; write scalars to a tensorboard ``SummaryWriter`` when given."""
        logger.info("\n" + self.table())
        if writer is not None:
            for name, value in self.scalars().items():
                writer.add_scalar(f"{tag}/{name}", value, 0)
            writer.flush()


def codebook_stats(codes: torch.Tensor, codebook_sizes: Sequence[int]):
    """Usage share and perplexity of each codebook.

    Args:
        codes: ``[N, M]`` long tokens of real items.
    Returns:
        (usage, perplexity): two lists of M floats.
    """
    usage, perplexity = [], []
    for r, size in enumerate(codebook_sizes):
        counts = torch.bincount(codes[:, r], minlength=size).double()
        p = counts / counts.sum()
        nz = p[p > 0]
        usage.append(float((counts > 0).sum()) / size)
        perplexity.append(float(torch.exp(-(nz * nz.log()).sum())))
    return usage, perplexity


def collision_stats(codes: torch.Tensor):
    """(share of items with a unique token set, size of the largest group sharing one)."""
    if codes.numel() == 0:
        return 1.0, 0
    _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    unique_share = float((counts[inverse] == 1).double().mean())
    return unique_share, int(counts.max())


def mean_abs_latent_cosine(latents: torch.Tensor) -> float:
    """Mean |cos| over distinct pairs of an item's expert latents ``[N, M, H]``."""
    m = latents.size(1)
    if m < 2:
        return float("nan")
    unit = F.normalize(latents, dim=-1)
    cos = unit @ unit.transpose(1, 2)  # [N, M, M]
    off_diag = ~torch.eye(m, dtype=torch.bool)
    return float(cos[:, off_diag].abs().mean())


def make_report(
    tokenizer: str,
    codes: torch.Tensor,
    codebook_sizes: Sequence[int],
    recon_error: float = float("nan"),
    latents: Optional[torch.Tensor] = None,
    extra: Optional[Dict[str, object]] = None,
) -> TokenizerReport:
    """Build a :class:`TokenizerReport` from the tokens ``[N, M]`` of the real items."""
    usage, perplexity = codebook_stats(codes, codebook_sizes)
    unique_share, largest = collision_stats(codes)
    cos = mean_abs_latent_cosine(latents) if latents is not None else float("nan")
    return TokenizerReport(
        tokenizer, codes.size(0), tuple(codebook_sizes), usage, perplexity, unique_share, largest,
        recon_error, cos, dict(extra or {}),
    )


def _fmt(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{x:.4f}"
