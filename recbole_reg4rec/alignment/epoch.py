"""One PARS epoch in the shape RecBole's training loop takes.

RecBole's ``Trainer._train_epoch(train_data, epoch_idx, loss_func)`` does, for every batch it
draws from ``train_data``: ``zero_grad``, (under DDP) the hooks that make DDP average the
gradients, ``loss_func(batch)`` under autocast, the NaN check, backward, gradient clipping,
the optimizer step and the loss-scaler update. A PARS epoch needs ``inner_steps`` such updates
per batch of sampled paths, all against the paths the weights before the first one sampled
(the behaviour policy). :class:`AlignmentEpoch` gives that loop what it expects:

* iterating it yields every training batch ``inner_steps`` times in a row, one *visit* per update;
* :meth:`AlignmentEpoch.loss` is the ``loss_func``: on a batch's first visit it samples the paths
  with the current weights and keeps them (:func:`.pars.sample_batch`); every visit returns the
  clipped GRPO loss of the current weights on the kept paths (:func:`.pars.batch_loss`), and adds
  the visit's statistics to the epoch's.

So stage 2 trains through RecBole's own loop, and under DDP the gradients are averaged by DDP.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Dict, Iterable, Iterator, Optional

import torch

from .pars import AlignmentSettings, RolloutBatch, batch_loss, sample_batch

#: statistics of each update, averaged over the epoch's updates
UPDATE_STATISTICS = ("kl", "clip_fraction", "ratio_deviation", "reflection_accuracy", "reflection_bce")
#: reward components of each sampled path, averaged (mean and std) over the epoch's paths
REWARD_COMPONENTS = ("hit", "step", "reflect", "total")


class AlignmentEpoch:
    """The visits and the loss of one PARS epoch over ``train_data`` (see the module docstring).

    Args:
        model: the policy being trained (in eval mode: it samples the paths it is updated on).
        reference: the frozen reference policy of the KL term.
        settings: the PARS settings (``inner_steps`` updates per batch).
        train_data: RecBole's training dataloader.
        batches: what to iterate instead of ``train_data`` itself, e.g. a progress bar over it.
        on_batch_end: called with this epoch after a batch's last update.
    """

    def __init__(
        self,
        model,
        reference,
        settings: AlignmentSettings,
        train_data,
        batches: Optional[Iterable] = None,
        on_batch_end: Optional[Callable[["AlignmentEpoch"], None]] = None,
    ):
        self.model = model
        self.reference = reference
        self.settings = settings
        self.train_data = train_data
        self.batches = train_data if batches is None else batches
        self.on_batch_end = on_batch_end
        self.visit = 0  # index of the current visit of the current batch, 0 .. inner_steps - 1
        self.rollouts: Optional[RolloutBatch] = None  # the current batch's paths, sampled on its first visit
        self.n_updates = 0
        self.n_paths = 0
        self.sums: Dict[str, float] = defaultdict(float)
        self.squares: Dict[str, float] = defaultdict(float)

    # ---- what RecBole's loop reads of its train_data -----------------------------------------
    def __len__(self) -> int:
        return len(self.train_data) * self.settings.inner_steps

    @property
    def shuffle(self) -> bool:
        return self.train_data.shuffle

    @property
    def sampler(self):
        """The loader's sampler: under DDP RecBole sets its epoch, so each epoch has its own order."""
        return self.train_data.sampler

    def __iter__(self) -> Iterator:
        for interaction in self.batches:
            for visit in range(self.settings.inner_steps):
                self.visit = visit
                yield interaction
            if self.on_batch_end is not None:
                self.on_batch_end(self)

    # ---- the loss_func -------------------------------------------------------------------------
    def loss(self, interaction) -> torch.Tensor:
        """The loss of the current visit of ``interaction`` (a scalar to minimise)."""
        if self.visit == 0:  # the weights before this batch's first update are the behaviour policy
            self.rollouts = sample_batch(self.model, self.reference, interaction, self.settings)
        out = batch_loss(self.model, self.rollouts, self.settings)
        self.n_updates += 1
        for name in UPDATE_STATISTICS:
            self.sums[name] += float(out[name])
        if self.visit == self.settings.inner_steps - 1:  # the batch's rewards, once (fixed at its first visit)
            for name in REWARD_COMPONENTS:
                values = out[name].float()
                self.sums[name] += float(values.sum())
                self.squares[name] += float((values**2).sum())
            self.n_paths += out["total"].numel()
        return out["loss"]

    # ---- the epoch's statistics ----------------------------------------------------------------
    @property
    def mean_reward(self) -> float:
        """Mean total reward of the paths sampled so far."""
        return self.sums["total"] / max(self.n_paths, 1)

    @property
    def mean_kl(self) -> float:
        """Mean KL to the reference over the updates so far."""
        return self.sums["kl"] / max(self.n_updates, 1)

    def statistics(self) -> Dict[str, float]:
        """``reward_<component>_mean`` / ``_std`` over the sampled paths and the update statistics
        (KL, clip fraction, mean |ratio - 1|, reflection accuracy and BCE) averaged over the updates."""
        stats = {}
        for name in REWARD_COMPONENTS:
            mean = self.sums[name] / max(self.n_paths, 1)
            stats[f"reward_{name}_mean"] = mean
            stats[f"reward_{name}_std"] = max(self.squares[name] / max(self.n_paths, 1) - mean**2, 0.0) ** 0.5
        for name in UPDATE_STATISTICS:
            stats[name] = self.sums[name] / max(self.n_updates, 1)
        return stats
