"""GRPO pieces: group-normalised advantages, the clipped surrogate and the KL penalty.

Plain functions of tensors, so each can be checked against a hand computation.
"""

from __future__ import annotations

from typing import Dict

import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``(R - mean_group) / std_group`` over the G paths of each context.

    Args:
        rewards: ``[B, G]``.

    Returns:
        ``[B, G]``; a group whose rewards are all equal gets advantage 0 (no NaN), because it
        says nothing about which path is better.
    """
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True, unbiased=False)
    return torch.where(std > eps, (rewards - mean) / (std + eps), torch.zeros_like(rewards))


def clipped_surrogate(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
) -> Dict[str, torch.Tensor]:
    """Per-token PPO/GRPO clipped objective, to be *maximised*.

    Args:
        logp_new: ``[B, G, S]`` log-probabilities of the emitted tokens under the current policy.
        logp_old: ``[B, G, S]`` the same under the policy that sampled them (no gradient).
        advantages: ``[B, G]`` one advantage per path, shared by its tokens.
        mask: ``[B, G, S]`` bool, the tokens that count.
        clip_eps: ratio clip range ε.

    Returns:
        ``objective`` (mean over counted tokens of ``min(r·A, clip(r, 1-ε, 1+ε)·A)``) and
        ``clip_fraction`` (share of counted tokens whose ratio was clipped).
    """
    ratio = torch.exp(logp_new - logp_old)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv
    per_token = torch.minimum(unclipped, clipped)
    weight = mask.float()
    denom = weight.sum().clamp_min(1.0)
    was_clipped = ((ratio - 1.0).abs() > clip_eps).float()
    return {
        "objective": (per_token * weight).sum() / denom,
        "clip_fraction": (was_clipped * weight).sum() / denom,
    }


def kl_to_reference(logp_new: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean per-token KL(π_θ ‖ π_ref) estimate on sampled tokens, the non-negative "k3"
    estimator ``exp(ref - new) - (ref - new) - 1`` (unbiased, low variance)."""
    diff = logp_ref - logp_new
    k3 = torch.exp(diff) - diff - 1.0
    weight = mask.float()
    return (k3 * weight).sum() / weight.sum().clamp_min(1.0)
