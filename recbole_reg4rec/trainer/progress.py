"""Readable progress of a training stage: each stage announces its budget, each epoch line tells
how far the stage is, how long it has run and how long it may still take.

RecBole logs ``epoch 3 training [time: 41.20s, train loss: 812.3]`` and nothing about the budget,
so a user of a 300-epoch default cannot tell minutes from hours. :class:`StageProgressMixin`
appends ``| stage 1: epoch 4/10, elapsed 2m45s, ETA <= 4m07s`` to that line. The ETA is an upper
bound: the mean duration of the stage's finished epochs (training and validation) times the
epochs left in the budget; early stopping can only end the stage sooner.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from recbole.utils import set_color


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``'1m15s'``, ``3725`` -> ``'1h02m05s'``, ``8.4`` -> ``'8s'``."""
    seconds = int(round(max(seconds, 0.0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass
class StageClock:
    """Wall clock of one stage that runs epochs ``first_epoch .. end_epoch - 1``."""

    name: str
    first_epoch: int
    end_epoch: int
    started: float = field(default_factory=time.monotonic)

    @property
    def budget(self) -> int:
        return max(self.end_epoch - self.first_epoch, 0)

    def progress(self, epoch_idx: int, now: Optional[float] = None) -> str:
        """Where the stage stands after ``epoch_idx`` finished training, e.g.
        ``'stage 1: epoch 4/10, elapsed 2m45s, ETA <= 4m07s'``."""
        now = time.monotonic() if now is None else now
        done = epoch_idx - self.first_epoch + 1
        elapsed = now - self.started
        left = self.end_epoch - epoch_idx - 1
        text = f"{self.name}: epoch {done}/{self.budget}, elapsed {format_duration(elapsed)}"
        if done > 0 and left > 0:
            text += f", ETA <= {format_duration(elapsed / done * left)}"
        return text


class StageProgressMixin:
    """Adds stage announcements and per-epoch elapsed/ETA to a RecBole ``Trainer``.

    Put it before ``Trainer`` in the bases and call :meth:`start_stage` when a stage begins.
    """

    stage_clock: Optional[StageClock] = None

    def start_stage(self, name: str, description: str, first_epoch: int, end_epoch: int, patience: int) -> None:
        """Log ``'<name>: <description>: up to N epochs (early stopping after P without improvement)'``
        and start the stage's clock."""
        self.stage_clock = StageClock(name, first_epoch, end_epoch)
        self.logger.info(set_color(
            f"{name}: {description}: up to {self.stage_clock.budget} epochs "
            f"(early stopping after {patience} without improvement of {self.valid_metric})", "pink"
        ))

    def _generate_train_loss_output(self, epoch_idx, s_time, e_time, losses):
        line = super()._generate_train_loss_output(epoch_idx, s_time, e_time, losses)
        if self.stage_clock is None:
            return line
        return f"{line} | {self.stage_clock.progress(epoch_idx)}"
