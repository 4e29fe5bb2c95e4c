"""PARS updates on a batch of training contexts: rollouts, rewards, clipped GRPO loss.

One batch of contexts is used for ``inner_steps`` policy updates (PPO/GRPO style):

1. :func:`sample_batch` (no gradient) samples G catalogue-consistent paths per context with the
   current weights — the *behaviour policy* — and keeps their log-probabilities at the sampling
   temperature, and the frozen reference's log-probabilities at the same temperature;
2. :func:`batch_loss` (with gradient) re-scores the same paths under the current weights at the
   same temperature. Its importance ratio ``exp(logp_new - logp_behaviour)`` is 1 at the first
   inner update and moves after it, so the clip of the surrogate bounds how far the later updates
   go (a trust region around the behaviour policy); the KL to the reference is taken at the same
   temperature. The rewards (and group advantages) are computed once per batch, at the first
   update, from the reflection verdicts of that re-scoring pass.

Kept apart from the trainer (which owns epochs, optimizer steps, checkpoints and logging) so the
loss can be tested on its own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .future_items import FUTURE_FIELD
from .grpo import clipped_surrogate, group_advantages, kl_to_reference
from .rewards import RewardWeights, emitted_matches, multi_step_rewards, prefix_consistency
from .rollout import Rollouts, path_log_probs, sample_paths


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
    inner_steps: int = 1
    sft_dropout: bool = False
    policy_weight: float = 1.0
    rollout_steering: float = 0.0

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
        inner_steps = int(config["pars_inner_steps"]) if "pars_inner_steps" in config else 1
        if inner_steps < 1:
            raise ValueError(
                f"pars_inner_steps = {inner_steps} must be >= 1 (policy updates per batch of sampled paths)."
            )
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
            inner_steps=inner_steps,
            sft_dropout=bool(config["pars_sft_dropout"]) if "pars_sft_dropout" in config else False,
            policy_weight=float(config["pars_policy_weight"]) if "pars_policy_weight" in config else 1.0,
            rollout_steering=float(config["pars_rollout_steering"] or 0.0) if "pars_rollout_steering" in config else 0.0,
        )
        for key in ("clip_eps", "kl_weight", "sft_weight", "reflection_weight", "policy_weight", "rollout_steering"):
            if getattr(settings, key) < 0:
                raise ValueError(f"pars_{key} = {getattr(settings, key)} must be >= 0.")
        if settings.token_temperature <= 0:
            raise ValueError(f"pars_token_temperature = {settings.token_temperature} must be > 0.")
        return settings


@dataclass
class RolloutBatch:
    """Sampled paths of B contexts and what every inner update on them needs."""

    item_seq: torch.Tensor  # [B, T]
    item_seq_len: torch.Tensor  # [B]
    target_items: torch.Tensor  # [B]
    future_targets: torch.Tensor  # [B, H, M] tokens of the next H training items
    future_valid: torch.Tensor  # [B, H] bool
    rollouts: Rollouts  # paths and behaviour log-probs [B, G, M] (sampling temperature)
    logp_ref: torch.Tensor  # [B, G, M] reference log-probs at the sampling temperature
    rewards: Dict[str, torch.Tensor] = field(default_factory=dict)  # [B, G] each, set at the first update
    advantages: Optional[torch.Tensor] = None  # [B, G], set at the first update


@torch.no_grad()
def sample_batch(model, reference, interaction, settings: AlignmentSettings) -> RolloutBatch:
    """Sample G paths per context with the current weights (the behaviour policy) and score them
    under the frozen reference, both at the sampling temperature."""
    item_seq = interaction[model.ITEM_SEQ]
    item_seq_len = interaction[model.ITEM_SEQ_LEN]
    target_items = interaction[model.POS_ITEM_ID]
    ctx = model.encode(item_seq, item_seq_len)
    item_prob = None
    if settings.rollout_steering > 0:  # sample the paths the fused ranking follows (the ID head's prior)
        item_prob = model.item_log_prior(ctx).exp()  # [B, N]
    rollouts = sample_paths(
        model, ctx, settings.group_size, settings.token_temperature, settings.order_temperature,
        item_prob=item_prob, steering_weight=settings.rollout_steering,
    )
    logp_ref, _ = path_log_probs(
        reference, reference.encode(item_seq, item_seq_len), rollouts, settings.token_temperature
    )
    target = model.codes[target_items]  # [B, M]
    if settings.msra_horizon > 0:
        future = interaction[FUTURE_FIELD][:, : settings.msra_horizon]  # [B, H]
        future_targets, future_valid = model.codes[future], future > 0
    else:
        future_targets = target.new_zeros(target.size(0), 0, target.size(1))
        future_valid = torch.zeros(target.size(0), 0, dtype=torch.bool, device=target.device)
    return RolloutBatch(item_seq, item_seq_len, target_items, future_targets, future_valid, rollouts, logp_ref)


def batch_loss(model, batch: RolloutBatch, settings: AlignmentSettings) -> Dict[str, torch.Tensor]:
    """GRPO loss of one inner update on ``batch``, plus the statistics the trainer logs.

    The encoder runs once for the policy; all G paths of a context share it. Returns a dict with
    ``loss`` (to minimise) and detached statistics (``kl``, ``clip_fraction``, ``ratio_deviation``
    = mean |ratio - 1|, reflection accuracy / BCE, and the batch's reward components).
    """
    ctx = model.encode(batch.item_seq, batch.item_seq_len)
    rollouts = batch.rollouts
    # the update's log-probs and the reflection verdicts that the rewards judge, in one pass
    logp_new, reflect_logit = path_log_probs(model, ctx, rollouts, settings.token_temperature)  # [B, G, M]
    target = model.codes[batch.target_items]  # [B, M]
    if batch.advantages is None:  # first update on this batch: rewards of the behaviour policy's verdicts
        batch.rewards = multi_step_rewards(
            rollouts.codebooks, rollouts.tokens, reflect_logit.detach(), target, batch.future_targets,
            batch.future_valid, settings.reward_weights, settings.msra_gamma,
        )
        batch.advantages = group_advantages(batch.rewards["total"])  # [B, G]
    mask = torch.ones_like(logp_new, dtype=torch.bool)
    surrogate = clipped_surrogate(logp_new, rollouts.logp, batch.advantages, mask, settings.clip_eps)
    kl = kl_to_reference(logp_new, batch.logp_ref, mask)
    loss = -settings.policy_weight * surrogate["objective"] + settings.kl_weight * kl

    # the reflection head learns the truth of on-policy prefixes (self-reflection signal)
    labels = prefix_consistency(emitted_matches(rollouts.codebooks, rollouts.tokens, target.unsqueeze(1)))
    reflection_bce = F.binary_cross_entropy_with_logits(reflect_logit, labels.float())
    if settings.reflection_weight > 0:
        loss = loss + settings.reflection_weight * reflection_bce
    if settings.sft_weight > 0:
        if settings.sft_dropout:  # as in stage 1: its own encoder pass with dropout on
            with dropout_on(model):
                sft = model.supervised_loss(model.encode(batch.item_seq, batch.item_seq_len), batch.target_items)
        else:  # on the policy's (dropout-free) encoding
            sft = model.supervised_loss(ctx, batch.target_items)
        loss = loss + settings.sft_weight * sft

    stats = {name: value.detach() for name, value in batch.rewards.items()}
    stats.update(
        kl=kl.detach(),
        clip_fraction=surrogate["clip_fraction"].detach(),
        ratio_deviation=(logp_new.detach() - rollouts.logp).exp().sub(1.0).abs().mean(),
        reflection_accuracy=((reflect_logit > 0) == labels).float().mean().detach(),
        reflection_bce=reflection_bce.detach(),
    )
    return {"loss": loss, **stats}


@contextlib.contextmanager
def dropout_on(model):
    """Dropout (and every other train-mode behaviour) on inside the block, off again after it.

    Sets the modules' flags directly: ``model.train()`` is not called, because the trainer keeps
    the policy in eval mode through the alignment epoch and REG4Rec counts its ``train()`` calls
    as supervised epochs (the CRSS warm-up)."""
    modules = list(model.modules())
    before = [m.training for m in modules]
    for m in modules:
        m.training = True
    try:
        yield
    finally:
        for m, mode in zip(modules, before):
            m.training = mode


def alignment_loss(model, reference, interaction, settings: AlignmentSettings) -> Dict[str, torch.Tensor]:
    """The loss of the first update on a freshly sampled batch (:func:`sample_batch` then
    :func:`batch_loss`); its ratio is 1, so this is the plain policy-gradient step."""
    return batch_loss(model, sample_batch(model, reference, interaction, settings), settings)
