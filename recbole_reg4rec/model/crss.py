"""CRSS — confidence-based reasoning step selection.

At every step the generator has a distribution over the tokens of every codebook not yet
emitted; CRSS turns each into a confidence and picks which codebook to emit next:
the most confident one(s) at inference, an order sampled from ``softmax(confidence / T)`` in
training (``T -> 0``: greedy easy-first), random orders during warm-up.
"""

from __future__ import annotations

import torch

CONFIDENCES = ("max", "entropy", "margin")


def codebook_confidence(log_probs: torch.Tensor, kind: str = "max") -> torch.Tensor:
    """Confidence of each codebook's distribution.

    Args:
        log_probs: ``[..., M, D]`` log-probabilities (``-inf`` on padding slots).
        kind: ``max`` (top-1 probability), ``entropy`` (negative entropy) or ``margin``
            (top-1 minus top-2 probability).

    Returns:
        ``[..., M]`` confidences (higher = more confident).
    """
    if kind == "max":  # exp is monotone: the exp of the largest log-prob, one exp per codebook
        return log_probs.max(dim=-1).values.exp()
    probs = log_probs.exp()
    if kind == "entropy":
        plogp = torch.where(probs > 0, probs * log_probs, torch.zeros_like(probs))
        return plogp.sum(dim=-1)
    if kind == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[..., 0] - top2[..., 1]
    raise ValueError(f"crss_confidence must be one of {CONFIDENCES}, got {kind!r}")


def select_codebooks(confidence: torch.Tensor, emitted: torch.Tensor, branch: int) -> torch.Tensor:
    """Inference choice: the ``branch`` most confident codebooks not yet emitted.

    Args:
        confidence: ``[..., M]``.
        emitted: ``[..., M]`` bool, True for codebooks already on the path.
        branch: how many codebooks to branch over (1 = greedy CRSS).

    Returns:
        ``[..., b]`` long codebook ids, most confident first, ``b = min(branch, M - #emitted)``
        (the number of remaining codebooks is the same for every path at a given step).
    """
    remaining = int((~emitted).sum(dim=-1).reshape(-1)[0]) if emitted.numel() else 0
    b = max(1, min(branch, remaining))
    masked = confidence.masked_fill(emitted, float("-inf"))
    return masked.topk(b, dim=-1).indices


def fixed_orders(batch_size: int, n_codebooks: int, device: torch.device) -> torch.Tensor:
    """The fixed order ``0 .. M-1`` for every sample: ``[B, M]``."""
    return torch.arange(n_codebooks, device=device).expand(batch_size, n_codebooks).clone()


def random_orders(batch_size: int, n_codebooks: int, device: torch.device) -> torch.Tensor:
    """A uniformly random permutation of the codebooks per sample: ``[B, M]`` (warm-up)."""
    return torch.rand(batch_size, n_codebooks, device=device).argsort(dim=-1)


def sample_next_codebook(confidence: torch.Tensor, emitted: torch.Tensor, temperature: float) -> torch.Tensor:
    """Sample one codebook per row from ``softmax(confidence / T)`` over the remaining ones.

    Args:
        confidence: ``[B, M]``; emitted: ``[B, M]`` bool; temperature ``T`` (``<= 0``: argmax).

    Returns:
        ``[B]`` long codebook ids, never an emitted one.
    """
    masked = confidence.masked_fill(emitted, float("-inf"))
    if temperature <= 0:
        return masked.argmax(dim=-1)
    probs = torch.softmax(masked / temperature, dim=-1)
    return torch.multinomial(probs, 1).squeeze(-1)


def inverse_permutation(orders: torch.Tensor) -> torch.Tensor:
    """``rank[b, r]`` = the step at which codebook ``r`` is emitted in ``orders [B, M]``."""
    rank = torch.empty_like(orders)
    steps = torch.arange(orders.size(1), device=orders.device).expand_as(orders)
    return rank.scatter_(1, orders, steps)
