"""PARS (preference alignment for reasoning) and MSRA (multi-step reward augmentation)."""

from .epoch import AlignmentEpoch
from .future_items import FUTURE_FIELD, attach_future_items, training_future_items
from .grpo import clipped_surrogate, group_advantages, kl_to_reference
from .pars import AlignmentSettings, RolloutBatch, alignment_loss, batch_loss, sample_batch
from .rewards import RewardWeights, multi_step_rewards, path_rewards

__all__ = [
    "AlignmentEpoch",
    "AlignmentSettings",
    "FUTURE_FIELD",
    "RewardWeights",
    "RolloutBatch",
    "alignment_loss",
    "attach_future_items",
    "batch_loss",
    "clipped_surrogate",
    "group_advantages",
    "kl_to_reference",
    "multi_step_rewards",
    "path_rewards",
    "sample_batch",
    "training_future_items",
]
