"""Entry points: RecBole's quick-start functions, with our models and safe checkpoints.

``run`` / ``run_recbole`` / ``run_recboles`` mirror ``recbole.quick_start``; the differences are
that spawned DDP workers import this package first (so they know our models too), that config
values are type-checked before anything is loaded (:mod:`.compat.config_checks`) and that a
killed run can be resumed: ``run_recbole(..., resume="saved/<Model>-<time>-<run id>.pth")`` (or
the run id alone, or the config key ``resume_checkpoint``) restores the run's newest checkpoint
before ``fit`` and finishes with the same results as an uninterrupted run. Use :func:`load_data_and_model` to reload a
checkpoint: it never unpickles code.
"""

from __future__ import annotations

import logging

import sys
from collections.abc import MutableMapping
from typing import Optional

from recbole.config import Config
from recbole.data.transform import construct_transform
from recbole.utils import get_environment, get_flops, set_color

from .compat.checkpoints import config_from_checkpoint, load_checkpoint, resume_file_for
from .compat.distributed import without_ddp_runtime
from .run import build_model, load_data, metrics_table, prepare_run, reset_logger, seed_everything, start_logging

__all__ = ["load_data_and_model", "reset_logger", "run", "run_recbole", "run_recboles"]


def run_recbole(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, queue=None,
                resume: Optional[str] = None):
    """Train and test one model, like RecBole's ``run_recbole`` (same arguments and result).

    As RecBole's, its ``Config`` reads ``--key=value`` overrides from ``sys.argv`` (the one place
    in this package that does: ``run_recbole.py`` is RecBole's own front door; every other entry
    point builds its config with :func:`.run.make_config`).

    Args:
        resume: checkpoint of an interrupted run of the same model, dataset and config (its best
            ``saved/<Model>-<time>-<run id>.pth`` or its ``saved/last/...``, the newer one is used; or
            its run id). Training continues where it stopped, with the RNG states it recorded; the
            config key ``resume_checkpoint`` does the same. Another model's or dataset's
            checkpoint is refused before anything is written.
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    resume = resume or config["resume_checkpoint"]
    if resume:  # checked before the run writes anything (log, checkpoint)
        resume = resume_file_for(resume, config)
    seed_everything(config)
    logger = start_logging(config)
    logger.info(sys.argv)
    logger.info(config)

    run = prepare_run(config)
    transform = construct_transform(config)
    flops = get_flops(run.model, run.dataset, config["device"], logger, transform)
    logger.info(set_color("FLOPs", "blue") + f": {flops}")

    trainer = run.trainer
    if resume:
        trainer.resume_checkpoint(resume)
    best_valid_score, best_valid_result = trainer.fit(
        run.train_data, run.valid_data, saved=saved, show_progress=config["show_progress"]
    )
    logger.info(set_color("Test: the best model on the test split", "pink"))
    test_result = trainer.evaluate(run.test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid and test results", "yellow") + ":\n"
                + metrics_table({"best valid": best_valid_result, "test": test_result}))
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "checkpoint": trainer.saved_model_file if saved else None,
        "log_file": next((h.baseFilename for h in logging.getLogger().handlers
                          if isinstance(h, logging.FileHandler)), None),
    }
    if not config["single_spec"]:
        import torch.distributed as dist

        # every rank leaves together: a rank that tears down its gloo pairs while a peer still
        # talks to it can abort that process (SIGABRT) instead of ending the run cleanly
        dist.barrier()
        dist.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)  # for multiprocessing, e.g., mp.spawn
    return result


def run_recboles(rank, *args):
    """Target of ``mp.spawn``: importing this module already registered our models."""
    kwargs = args[-1]
    if not isinstance(kwargs, MutableMapping):
        raise ValueError(f"The last argument of run_recboles should be a dict, but got {type(kwargs)}")
    kwargs["config_dict"] = kwargs.get("config_dict", {})
    kwargs["config_dict"]["local_rank"] = rank
    run_recbole(*args[:3], **kwargs)


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
    resume: Optional[str] = None,
):
    """Single-process or DDP run, like ``recbole.quick_start.run`` (``resume``: see :func:`run_recbole`)."""
    if nproc == 1 and world_size <= 0:
        return run_recbole(model, dataset, config_file_list, config_dict, saved, resume=resume)
    import torch
    import torch.multiprocessing as mp

    from .compat.distributed import check_enough_gpus

    # check the config before spawning: errors inside the workers come wrapped in their tracebacks
    preflight = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if torch.device(preflight["device"]).type == "cuda":
        check_enough_gpus(preflight["gpu_id"], nproc)
    if resume or preflight["resume_checkpoint"]:
        resume_file_for(resume or preflight["resume_checkpoint"], preflight)
    if world_size == -1:
        world_size = nproc
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update({"world_size": world_size, "ip": ip, "port": port, "nproc": nproc, "offset": group_offset})
    kwargs = {"config_dict": config_dict, "queue": queue, "saved": saved, "resume": resume}
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
    seed_everything(config)
    logger = start_logging(config)
    logger.info(config)

    dataset, train_data, valid_data, test_data = load_data(config)
    model, _ = build_model(config, train_data)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    model.eval()
    return config, model, dataset, train_data, valid_data, test_data
