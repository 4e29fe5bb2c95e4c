"""TensorBoard writers on absolute paths.

RecBole 1.2.1's ``get_tensorboard`` opens a ``SummaryWriter`` on the relative path
``log_tensorboard/<run>`` and the trainer never closes it. The writer's background thread flushes
later against the *current* directory, so a process that changes directory after a run (Ray trials,
test suites, notebooks running several experiments) gets its events written under another folder or a
``FileNotFoundError`` from that thread. The same folder, resolved once when the writer is made, fixes it:
``get_tensorboard`` keeps RecBole's naming and only the writer class it calls resolves the folder.
"""

from __future__ import annotations

import os

from torch.utils.tensorboard import SummaryWriter


class AbsoluteSummaryWriter(SummaryWriter):
    """``SummaryWriter`` whose ``log_dir`` is made absolute when the writer is created."""

    def __init__(self, log_dir=None, *args, **kwargs):
        super().__init__(os.path.abspath(log_dir) if log_dir else None, *args, **kwargs)


def install() -> None:
    """Make RecBole's ``get_tensorboard`` build its writers with :class:`AbsoluteSummaryWriter` (idempotent)."""
    import recbole.utils.utils as utils

    utils.SummaryWriter = AbsoluteSummaryWriter
