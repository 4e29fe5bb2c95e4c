"""RecBole's DDP (``run_recbole.py --nproc=N``) on machines without CUDA.

RecBole 1.2.1 assumes GPUs whenever it runs distributed:

* ``Config._init_device`` asserts one ``gpu_id`` per process, joins the process group with
  ``backend="nccl"``, and sets ``device = cuda:<local_rank>`` / ``torch.cuda.set_device``;
* ``AbstractTrainer.__init__`` wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch refuses for a CPU module;
* ``Trainer._map_reduce`` weighs each rank's metrics by its number of *batches* times the
  length of a batch tuple (``len(batched_data)``), not by its number of evaluated users;
* every rank names its checkpoint after its own clock (``<model>-<time>.pth``) but only rank 0
  writes it, so another rank may load a file that does not exist, or one rank 0 has not
  written yet, when it evaluates the best model.

:func:`install` keeps RecBole's behaviour on CUDA (nccl, one GPU per rank) and, when CUDA is
unavailable or ``gpu_id`` is empty, uses the ``gloo`` backend on the CPU instead. Evaluation
metrics of all ranks are averaged weighted by each rank's number of evaluated users; all ranks
use rank 0's checkpoint name and wait for rank 0 before loading the best model.
"""

from __future__ import annotations

import functools
import os


def _uses_cuda(config_dict) -> bool:
    import torch

    return bool(str(config_dict.get("gpu_id", ""))) and torch.cuda.is_available()


def _wrap_init_device(original):
    @functools.wraps(original)
    def _init_device(self):
        cfg = self.final_config_dict
        if "local_rank" not in cfg or _uses_cuda(cfg):
            return original(self)  # single process, or DDP on GPUs (nccl): RecBole's own path
        import torch

        gpu_id = cfg.get("gpu_id", "")
        cfg["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
        os.environ["CUDA_VISIBLE_DEVICES"] = cfg["gpu_id"]
        torch.distributed.init_process_group(
            backend="gloo",
            rank=cfg["local_rank"] + cfg["offset"],
            world_size=cfg["world_size"],
            init_method=f"tcp://{cfg['ip']}:{cfg['port']}",
        )
        cfg["device"] = torch.device("cpu")
        cfg["single_spec"] = False
        if cfg["local_rank"] != 0:
            cfg["state"] = "error"
            cfg["show_progress"] = False
            cfg["verbose"] = False

    _init_device.__reg4rec_wrapped__ = True
    return _init_device


def _abstract_trainer_init(self, config, model):
    """RecBole's ``AbstractTrainer.__init__`` with ``device_ids`` only for CUDA modules."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    self.config = config
    self.model = model
    if not config["single_spec"]:
        self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        on_cuda = torch.device(config["device"]).type == "cuda"
        self.distributed_model = DistributedDataParallel(
            self.model, device_ids=[config["local_rank"]] if on_cuda else None
        )


_abstract_trainer_init.__reg4rec_wrapped__ = True


def _wrap_trainer_init(original):
    """Give every rank rank 0's ``saved_model_file`` (the only rank that writes it)."""

    @functools.wraps(original)
    def __init__(self, config, model):
        original(self, config, model)
        if not config["single_spec"] and hasattr(self, "saved_model_file"):
            import torch.distributed as dist

            name = [self.saved_model_file]
            dist.broadcast_object_list(name, src=0)
            self.saved_model_file = name[0]

    __init__.__reg4rec_wrapped__ = True
    return __init__


def _wrap_evaluate(original):
    """Wait for rank 0's checkpoint before loading it; record the number of users (rows) each
    rank evaluated, for :func:`_map_reduce`."""

    @functools.wraps(original)
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        kwargs = dict(load_best_model=load_best_model, model_file=model_file, show_progress=show_progress)
        if self.config["single_spec"] or not hasattr(self, "evaluator"):
            return original(self, eval_data, **kwargs)
        if eval_data and load_best_model:
            import torch.distributed as dist

            dist.barrier()  # rank 0 has written the best checkpoint
        args = (eval_data,)
        evaluator = self.evaluator
        inner = evaluator.evaluate

        def counting(struct):
            rows = None
            for key in ("rec.topk", "rec.score", "rec.meanrank", "data.label"):
                if key in struct:
                    rows = len(struct[key])
                    break
            self._reg4rec_eval_rows = rows
            return inner(struct)

        evaluator.evaluate = counting
        try:
            return original(self, *args, **kwargs)
        finally:
            del evaluator.evaluate  # back to the class method

    evaluate.__reg4rec_wrapped__ = True
    return evaluate


def _wrap_map_reduce(original):
    @functools.wraps(original)
    def _map_reduce(self, result, num_sample):
        rows = getattr(self, "_reg4rec_eval_rows", None)
        self._reg4rec_eval_rows = None
        return original(self, result, num_sample if rows is None else rows)

    _map_reduce.__reg4rec_wrapped__ = True
    return _map_reduce


def install() -> None:
    """Patch the places listed in the module docstring (idempotent)."""
    from recbole.config import Config
    from recbole.trainer import trainer as trainer_module

    if not getattr(Config._init_device, "__reg4rec_wrapped__", False):
        Config._init_device = _wrap_init_device(Config._init_device)
    trainer_module.AbstractTrainer.__init__ = _abstract_trainer_init
    Trainer = trainer_module.Trainer
    if not getattr(Trainer.__init__, "__reg4rec_wrapped__", False):
        Trainer.__init__ = _wrap_trainer_init(Trainer.__init__)
    if not getattr(Trainer.evaluate, "__reg4rec_wrapped__", False):
        Trainer.evaluate = _wrap_evaluate(Trainer.evaluate)
    if not getattr(Trainer._map_reduce, "__reg4rec_wrapped__", False):
        Trainer._map_reduce = _wrap_map_reduce(Trainer._map_reduce)
