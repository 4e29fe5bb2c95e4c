"""One PARS update on a batch of training contexts: rollouts, rewards, GRPO loss.

Kept apart from the trainer (which owns epochs, checkpoints and logging) so the loss can be
tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

from ..alignment import (
    FUTURE_FIELD,
    RewardWeights,
    clipped_surrogate,
    group_advantages,
    kl_to_reference,
    multi_step_rewards,
)
from ..alignment.rewards import emitted_matches, prefix_consistency
from ..alignment.rollout import path_log_probs, sample_paths


@dataclass(frozen=True)
class AlignmentSettings:
    """The PARS / MSRA config keys (``properties/alignment.yaml``), validated."""

    group_size: int
    clip_eps: float
    kl_weight: float
    sft_weight: float
    reflection_weight: float
    token_temperature: float
    order_temperature: float
    reward_weights: RewardWeights
    msra_horizon: int
    msra_gamma: float

    @classmethod
    def from_config(cls, config) -> "AlignmentSettings":
        group_size = int(config["pars_group_size"])
        if group_size < 2:
            raise ValueError(
                f"pars_group_size = {group_size}: GRPO compares paths within a group, so it needs at least 2 "
                f"sampled paths per context (8 is the default)."
            )
        gamma = float(config["msra_gamma"])
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"msra_gamma = {gamma} must lie in (0, 1] (the discount of future rewards).")
        horizon = int(config["msra_horizon"])
        if horizon < 0:
            raise ValueError(f"msra_horizon = {horizon} must be >= 0 (0 turns MSRA off).")
        settings = cls(
            group_size=group_size,
            clip_eps=float(config["pars_clip_eps"]),
            kl_weight=float(config["pars_kl_weight"]),
            sft_weight=float(config["pars_sft_weight"]),
            reflection_weight=float(config["pars_reflection_weight"]),
            token_temperature=float(config["pars_token_temperature"]),
            order_temperature=float(config["pars_order_temperature"]),
            reward_weights=RewardWeights.from_config(config["pars_reward_weights"]),
            msra_horizon=horizon,
            msra_gamma=gamma,
        )
        for key in ("clip_eps", "kl_weight", "sft_weight", "reflection_weight"):
            if getattr(settings, key) < 0:
                raise ValueError(f"pars_{key} = {getattr(settings, key)} must be >= 0.")
        if settings.token_temperature <= 0:
            raise ValueError(f"pars_token_temperature = {settings.token_temperature} must be > 0.")
        return settings


def alignment_loss(model, reference, interaction, settings: AlignmentSettings) -> Dict[str, torch.Tensor]:
    """GRPO loss of one batch of contexts, plus the statistics the trainer logs.

    The encoder runs once for the policy and once for the frozen reference; all G rollouts of
    a context share it. Returns a dict with ``loss`` (to minimise) and detached statistics.
    """
    item_seq = interaction[model.ITEM_SEQ]
    item_seq_len = interaction[model.ITEM_SEQ_LEN]
    target_items = interaction[model.POS_ITEM_ID]
    ctx = model.encode(item_seq, item_seq_len)
    rollouts = sample_paths(model, ctx, settings.group_size, settings.token_temperature, settings.order_temperature)

    # one re-scoring pass with gradient: the update's log-probs and the reflection verdicts that
    # the rewards judge (sampling and update use the same weights, so these are the sampler's own)
    logp_new, reflect_logit = path_log_probs(model, ctx, rollouts)  # [B, G, M]

    target = model.codes[target_items]  # [B, M]
    if settings.msra_horizon > 0:
        future = interaction[FUTURE_FIELD][:, : settings.msra_horizon]  # [B, H]
        future_targets, future_valid = model.codes[future], future > 0
    else:
        future_targets = target.new_zeros(target.size(0), 0, target.size(1))
        future_valid = torch.zeros(target.size(0), 0, dtype=torch.bool, device=target.device)
    rewards = multi_step_rewards(
        rollouts.codebooks, rollouts.tokens, reflect_logit.detach(), target, future_targets, future_valid,
        settings.reward_weights, settings.msra_gamma,
    )
    advantages = group_advantages(rewards["total"])  # [B, G]
    with torch.no_grad():
        logp_ref, _ = path_log_probs(reference, reference.encode(item_seq, item_seq_len), rollouts)
    mask = torch.ones_like(logp_new, dtype=torch.bool)
    surrogate = clipped_surrogate(logp_new, rollouts.logp, advantages, mask, settings.clip_eps)
    kl = kl_to_reference(logp_new, logp_ref, mask)
    loss = -surrogate["objective"] + settings.kl_weight * kl

    # the reflection head learns the truth of on-policy prefixes (self-reflection signal)
    labels = prefix_consistency(emitted_matches(rollouts.codebooks, rollouts.tokens, target.unsqueeze(1)))
    reflection_bce = F.binary_cross_entropy_with_logits(reflect_logit, labels.float())
    if settings.reflection_weight > 0:
        loss = loss + settings.reflection_weight * reflection_bce
    if settings.sft_weight > 0:
        loss = loss + settings.sft_weight * model.supervised_loss(ctx, target_items)

    stats = {name: value.detach() for name, value in rewards.items()}
    stats.update(
        kl=kl.detach(),
        clip_fraction=surrogate["clip_fraction"].detach(),
        reflection_accuracy=((reflect_logit > 0) == labels).float().mean().detach(),
        reflection_bce=reflection_bce.detach(),
    )
    return {"loss": loss, **stats}
