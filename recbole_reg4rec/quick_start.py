"""Entry points: RecBole's quick-start functions, with our models and safe checkpoints.

``run`` / ``run_recbole`` / ``run_recboles`` mirror ``recbole.quick_start``; the difference is
that spawned DDP workers import this package first (so they know our models too). Use
:func:`load_data_and_model` to reload a checkpoint: it never unpickles code.
"""

from __future__ import annotations

import logging
from logging import getLogger
from typing import Optional

from recbole.data import create_dataset, data_preparation
from recbole.quick_start import quick_start as _recbole_quick_start
from recbole.utils import get_model, init_logger, init_seed

from .compat.checkpoints import config_from_checkpoint, load_checkpoint
from .compat.distributed import without_ddp_runtime


def reset_logger() -> None:
    """Drop the handlers RecBole's ``init_logger`` adds, so repeated runs in one process
    (tests, sweeps, benchmarks) do not print every line several times."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()


def run_recbole(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, queue=None):
    """Train and test one model (single process). Same arguments and result as RecBole's."""
    reset_logger()
    return _recbole_quick_start.run_recbole(
        model=model, dataset=dataset, config_file_list=config_file_list,
        config_dict=config_dict, saved=saved, queue=queue,
    )


def run_recboles(rank, *args):
    """Target of ``mp.spawn``: importing this module already registered our models."""
    reset_logger()
    _recbole_quick_start.run_recboles(rank, *args)


def run(
    model,
    dataset,
    config_file_list=None,
    config_dict=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
):
    """Single-process or DDP run, like ``recbole.quick_start.run``."""
    if nproc == 1 and world_size <= 0:
        return run_recbole(model, dataset, config_file_list, config_dict, saved)
    import torch.multiprocessing as mp

    if world_size == -1:
        world_size = nproc
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update({"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset})
    kwargs = {"config_dict": config_dict, "queue": queue, "saved": saved}
    mp.spawn(run_recboles, args=(model, dataset, config_file_list, kwargs), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def load_data_and_model(model_file: str, trusted: bool = False, overrides: Optional[dict] = None):
    """Reload a checkpoint with its dataset and dataloaders, like RecBole's function.

    Args:
        model_file: checkpoint written by a RecBole trainer under ``recbole_reg4rec``.
        trusted: also accept a legacy RecBole checkpoint that needs full unpickling. Only for
            files you wrote or trust: unpickling runs code stored in the file.
        overrides: config settings to change, e.g. ``{"use_gpu": False}``.

    Returns:
        ``(config, model, dataset, train_data, valid_data, test_data)``, model in eval mode.
    """
    checkpoint = without_ddp_runtime(load_checkpoint(model_file, map_location="cpu", trusted=trusted))
    config = config_from_checkpoint(checkpoint, overrides)
    init_seed(config["seed"], config["reproducibility"])
    reset_logger()
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    model.eval()
    return config, model, dataset, train_data, valid_data, test_data
