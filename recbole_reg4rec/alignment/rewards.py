"""PARS rewards for sampled reasoning paths, and their MSRA multi-step fusion.

A *path* here is a full reasoning path: M (codebook, token) pairs in the order they were emitted,
``codebooks [..., M]`` and ``tokens [..., M]``. Rewards compare a path with a *reference item*'s
token row ``target [..., M]`` (token per codebook):

* **item hit**: the path names the reference item's full token set (for a unique token set —
  ≥ 99 % of items under MPQ — this is "the path's top item is the item");
* **step credit**: share of emitted tokens equal to the item's token on that codebook;
* **reflection correctness**: share of steps at which the reflection head's verdict
  ``p(prefix consistent) > 0.5`` matches the truth (prefix ⊆ the item's token set).

``R = w_hit · hit + w_step · step + w_reflect · reflect`` (weights ``pars_reward_weights``).
MSRA adds the same reward against the user's next training items:
``R_total = R(y, i_{T+1}) + Σ_{h=1..H} γ^h R(y, i_{T+1+h})`` (missing future items add 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import torch

REWARD_COMPONENTS = ("hit", "step", "reflect")


@dataclass(frozen=True)
class RewardWeights:
    """Non-negative weights of the reward components."""

    hit: float = 1.0
    step: float = 0.5
    reflect: float = 0.1

    @classmethod
    def from_config(cls, value: Mapping | None) -> "RewardWeights":
        value = dict(value or {})
        unknown = set(value) - set(REWARD_COMPONENTS)
        if unknown:
            raise ValueError(
                f"pars_reward_weights has unknown component(s) {sorted(unknown)}; "
                f"use only {list(REWARD_COMPONENTS)}, e.g. {{hit: 1.0, step: 0.5, reflect: 0.1}}."
            )
        weights = cls(**{k: float(v) for k, v in value.items()})
        for name in REWARD_COMPONENTS:
            if getattr(weights, name) < 0:
                raise ValueError(
                    f"pars_reward_weights.{name} = {getattr(weights, name)} is negative; reward weights "
                    f"must be >= 0 (set a component to 0 to switch it off)."
                )
        if weights.hit + weights.step + weights.reflect == 0:
            raise ValueError("pars_reward_weights are all 0: the alignment stage would have no signal.")
        return weights


def emitted_matches(codebooks: torch.Tensor, tokens: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Whether each emitted token equals the reference item's token on that codebook.

    Args:
        codebooks, tokens: ``[..., M]`` path; target: ``[..., M]`` item tokens per codebook
            (broadcastable to the path's leading shape).

    Returns:
        ``[..., M]`` bool.
    """
    target = target.expand(*codebooks.shape[:-1], target.size(-1))
    return target.gather(-1, codebooks) == tokens


def item_hit(matches: torch.Tensor) -> torch.Tensor:
    """``matches [..., M]`` -> ``[...]`` float: 1 when every emitted token matches."""
    return matches.all(dim=-1).float()


def step_credit(matches: torch.Tensor) -> torch.Tensor:
    """``matches [..., M]`` -> ``[...]`` float: share of matching tokens."""
    return matches.float().mean(dim=-1)


def prefix_consistency(matches: torch.Tensor) -> torch.Tensor:
    """Truth of the reflection label after each step: the prefix of s+1 pairs ⊆ the item's
    token set. ``[..., M]`` bool -> ``[..., M]`` bool (a cumulative AND)."""
    return torch.cummin(matches.int(), dim=-1).values.bool()


def reflection_correctness(reflect_logit: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """Share of steps whose reflection verdict (``logit > 0``) equals the truth.

    Args:
        reflect_logit: ``[..., M]`` reflection logits after each step; matches: ``[..., M]``.
    """
    return ((reflect_logit > 0) == prefix_consistency(matches)).float().mean(dim=-1)


def path_rewards(
    codebooks: torch.Tensor,
    tokens: torch.Tensor,
    reflect_logit: torch.Tensor,
    target: torch.Tensor,
    weights: RewardWeights,
) -> Dict[str, torch.Tensor]:
    """Reward components and their weighted fusion for paths against one reference item each.

    Args:
        codebooks, tokens, reflect_logit: ``[B, G, M]`` (G paths per context).
        target: ``[B, M]`` the reference item's tokens.

    Returns:
        dict with ``hit``, ``step``, ``reflect`` and ``total``, each ``[B, G]``.
    """
    matches = emitted_matches(codebooks, tokens, target.unsqueeze(1))
    parts = {
        "hit": item_hit(matches),
        "step": step_credit(matches),
        "reflect": reflection_correctness(reflect_logit, matches),
    }
    parts["total"] = weights.hit * parts["hit"] + weights.step * parts["step"] + weights.reflect * parts["reflect"]
    return parts


def multi_step_rewards(
    codebooks: torch.Tensor,
    tokens: torch.Tensor,
    reflect_logit: torch.Tensor,
    target: torch.Tensor,
    future_targets: torch.Tensor,
    future_valid: torch.Tensor,
    weights: RewardWeights,
    gamma: float,
) -> Dict[str, torch.Tensor]:
    """MSRA: next-item reward plus discounted rewards against the next H training items.

    Args:
        codebooks, tokens, reflect_logit: ``[B, G, M]``.
        target: ``[B, M]`` tokens of the next item i_{T+1}.
        future_targets: ``[B, H, M]`` tokens of i_{T+1+h} (anything where invalid).
        future_valid: ``[B, H]`` bool, False where the user has no such training item.
        gamma: discount in (0, 1].

    Returns:
        the components of the next-item reward (``hit``, ``step``, ``reflect``, ``next``) and
        ``total`` = next + Σ_h γ^h · valid_h · R_h, each ``[B, G]``.
    """
    parts = path_rewards(codebooks, tokens, reflect_logit, target, weights)
    total = parts["total"].clone()
    parts["next"] = parts.pop("total")
    for h in range(future_targets.size(1)):
        future = path_rewards(codebooks, tokens, reflect_logit, future_targets[:, h], weights)["total"]
        total = total + (gamma ** (h + 1)) * future * future_valid[:, h : h + 1].float()
    parts["total"] = total
    return parts
