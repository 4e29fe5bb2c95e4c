"""PARS (preference alignment for reasoning) and MSRA (multi-step reward augmentation)."""

from .future_items import FUTURE_FIELD, attach_future_items, training_future_items
from .grpo import clipped_surrogate, group_advantages, kl_to_reference
from .rewards import RewardWeights, multi_step_rewards, path_rewards

__all__ = [
    "FUTURE_FIELD",
    "RewardWeights",
    "attach_future_items",
    "clipped_surrogate",
    "group_advantages",
    "kl_to_reference",
    "multi_step_rewards",
    "path_rewards",
    "training_future_items",
]
