"""Product quantization (PQ) tokenizer: unordered tokens without MPQ's experts, gate or orthogonality.

The item feature vector (centred, zero-padded to a multiple of M) is cut into M equal blocks and
each block is clustered by k-means into D codewords; token r of an item is its block r's cluster.
The M tokens describe disjoint parts of the same features, so — as MPQ's — they are parallel and
unordered, but nothing is learned to make them complementary: no expert MLPs, no gate, no
orthogonality loss. Items that share a full token set are moved apart exactly as MPQ's are
(:func:`~.mpq.resolve_collisions`, with the blocks as latents). ``REG4Rec_woMPQ`` uses it, so the
ablation changes the quantizer only and keeps CRSS over unordered tokens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from .mpq import resolve_collisions


@dataclass
class PQResult:
    """Tokens of the real items (padding excluded).

    Attributes:
        codes: ``[N, M]`` long, one token per block.
        recon_error: relative error ``||v - concat_r centroid_r||^2 / ||v||^2`` (v centred).
        unique_before_resolution: share of items with a unique token set before collisions were resolved.
        n_reassigned: items given another token set by the collision resolution.
    """

    codes: torch.Tensor
    recon_error: float
    unique_before_resolution: float
    n_reassigned: int


def train_pq_kmeans(
    features: torch.Tensor, n_codebooks: int, codebook_size: int, seed: int, resolve: bool = True
) -> PQResult:
    """Quantize ``features [N, d]`` with M = ``n_codebooks`` blocks of ``codebook_size`` codewords each."""
    x = features.double().numpy()
    x = x - x.mean(0, keepdims=True)
    width = -(-x.shape[1] // n_codebooks)  # ceil(d / M)
    x = np.pad(x, ((0, 0), (0, width * n_codebooks - x.shape[1])))
    blocks = x.reshape(x.shape[0], n_codebooks, width)  # [N, M, w]
    codes = np.zeros((x.shape[0], n_codebooks), dtype=np.int64)
    centroids = np.zeros((n_codebooks, codebook_size, width))
    for r in range(n_codebooks):
        km = KMeans(n_clusters=codebook_size, n_init=1, random_state=seed + r)
        with warnings.catch_warnings():  # fewer distinct blocks than D is fine
            warnings.simplefilter("ignore", ConvergenceWarning)
            codes[:, r] = km.fit_predict(blocks[:, r])
        centroids[r] = km.cluster_centers_
    quantized = centroids[np.arange(n_codebooks)[None, :], codes]  # [N, M, w]
    total = float((blocks**2).sum())
    recon_error = float(((blocks - quantized) ** 2).sum()) / total if total > 0 else 0.0
    codes_t = torch.from_numpy(codes)
    unique_before = torch.unique(codes_t, dim=0).size(0) / max(codes_t.size(0), 1)
    n_moved = 0
    if resolve:
        codes_t, n_moved = resolve_collisions(
            torch.from_numpy(blocks).float(), torch.from_numpy(centroids).float(), codes_t
        )
    return PQResult(codes_t, recon_error, unique_before, n_moved)
