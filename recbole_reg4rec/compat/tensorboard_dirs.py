"""TensorBoard writers on absolute paths.

RecBole 1.2.1's ``get_tensorboard`` opens a ``SummaryWriter`` on the relative path
``log_tensorboard/<run>`` and the trainer never closes it. The writer's background thread flushes
later against the *current* directory, so a process that changes directory after a run (Ray trials,
test suites, notebooks running several experiments) gets its events written under another folder or a
``FileNotFoundError`` from that thread. The same folder, resolved once when the writer is made, fixes it.
"""

from __future__ import annotations

import os


def get_tensorboard(logger):
    """RecBole's ``get_tensorboard`` with the writer's folder made absolute (same name as RecBole's)."""
    from recbole.utils.utils import get_local_time
    from torch.utils.tensorboard import SummaryWriter

    dir_name = None
    for handler in logger.handlers:
        if hasattr(handler, "baseFilename"):
            dir_name = os.path.basename(getattr(handler, "baseFilename")).split(".")[0]
            break
    if dir_name is None:
        dir_name = "{}-{}".format("model", get_local_time())
    return SummaryWriter(os.path.abspath(os.path.join("log_tensorboard", dir_name)))


def install() -> None:
    """Bind it wherever RecBole imported ``get_tensorboard`` by name (idempotent)."""
    import recbole.trainer.trainer as trainer
    import recbole.utils
    import recbole.utils.utils as utils

    for module in (recbole.utils, utils, trainer):
        module.get_tensorboard = get_tensorboard
