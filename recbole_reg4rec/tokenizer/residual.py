"""Residual k-means (RQ-KMeans) tokenizer: ordered tokens plus a de-duplication token.

Level 1 clusters the item feature vectors into D groups; every next level clusters what the
previous levels left unexplained (the residuals), so token r refines tokens 1..r-1 and a prefix
of the tokens is a coarse-to-fine path, as in TIGER's semantic IDs. We use k-means rather than
an RQ-VAE: deterministic, no training loop, and on small catalogues its residuals are as good.

Items that share all L residual tokens get a last, de-duplication token 0, 1, 2, ... (in item
order) so every item's full ID is unique; that codebook's size is the largest collision group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning


@dataclass
class RQResult:
    """Tokens of the real items (padding excluded).

    Attributes:
        codes: ``[N, L + 1]`` long; the last column is the de-duplication token.
        codebook_sizes: ``(D, ..., D, max collision group)``.
        recon_error: relative error ``||v - sum_l centroid_l||^2 / ||v||^2`` (v centred).
        prefix_codes: ``[N, L]`` the residual tokens alone (for collision diagnostics).
    """

    codes: torch.Tensor
    codebook_sizes: Tuple[int, ...]
    recon_error: float
    prefix_codes: torch.Tensor


def train_rq_kmeans(features: torch.Tensor, n_levels: int, codebook_size: int, seed: int) -> RQResult:
    """Quantize ``features [N, d]`` with ``n_levels`` residual k-means levels of ``codebook_size``."""
    x = features.double().numpy()
    x = x - x.mean(0, keepdims=True)
    residual = x.copy()
    levels = np.zeros((x.shape[0], n_levels), dtype=np.int64)
    for level in range(n_levels):
        km = KMeans(n_clusters=codebook_size, n_init=1, random_state=seed + level)
        with warnings.catch_warnings():  # fewer distinct residuals than D late in the stack is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            levels[:, level] = km.fit_predict(residual)
        residual = residual - km.cluster_centers_[levels[:, level]]
    total = float((x**2).sum())
    recon_error = float((residual**2).sum()) / total if total > 0 else 0.0
    prefix = torch.from_numpy(levels)
    dedup = dedup_tokens(prefix)
    codes = torch.cat([prefix, dedup.unsqueeze(1)], dim=1)
    sizes = (codebook_size,) * n_levels + (int(dedup.max()) + 1 if dedup.numel() else 1,)
    return RQResult(codes, sizes, recon_error, prefix)


def dedup_tokens(codes: torch.Tensor) -> torch.Tensor:
    """``[N, L]`` -> ``[N]``: rank of each item among the items with the same tokens (item order)."""
    if codes.numel() == 0:
        return torch.zeros(codes.size(0), dtype=torch.long)
    _, group = torch.unique(codes, dim=0, return_inverse=True)  # [N] group id
    order = torch.argsort(group, stable=True)  # items grouped, item order kept inside a group
    sorted_group = group[order]
    first = torch.ones_like(sorted_group, dtype=torch.bool)
    first[1:] = sorted_group[1:] != sorted_group[:-1]
    start = torch.cummax(torch.where(first, torch.arange(len(order)), 0), dim=0).values
    rank = torch.empty_like(group)
    rank[order] = torch.arange(len(order)) - start
    return rank
