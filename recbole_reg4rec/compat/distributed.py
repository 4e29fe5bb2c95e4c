"""RecBole's DDP (``run_recbole.py --nproc=N``) on machines without CUDA.

RecBole 1.2.1 assumes GPUs whenever it runs distributed:

* ``Config._init_device`` asserts one ``gpu_id`` per process, joins the process group with
  ``backend="nccl"``, and sets ``device = cuda:<local_rank>`` / ``torch.cuda.set_device``;
* ``AbstractTrainer.__init__`` wraps the model in ``DistributedDataParallel(model,
  device_ids=[local_rank])``, which torch refuses for a CPU module;
* every rank names its checkpoint after its own clock and run id (``<model>-<time>-<run id>.pth``)
  but only rank 0 writes it, so another rank may load a file that does not exist, or one rank 0 has not
  written yet, when it evaluates the best model;
* ``ensure_dir`` checks then creates a folder, so two ranks creating ``saved/`` or ``log/``
  at once crash with ``FileExistsError``.

:func:`install` keeps RecBole's behaviour on CUDA (nccl, one GPU per rank) and, when CUDA is
unavailable or ``gpu_id`` is empty, uses the ``gloo`` backend on the CPU instead. All ranks
use rank 0's checkpoint name (rank 0 stores every rank's RNG states in it: a resumed run
continues each rank's own random sequence), and ``fit`` / ``evaluate`` wait for rank 0's
checkpoint before any rank reads it. On the CPU each rank uses ``cpu_count // nproc`` torch
threads (no oversubscription).

Gradients need no patch: RecBole's own ``Trainer._train_epoch`` makes DDP average them
(``set_reduce_hook`` + ``sync_grad_loss``), and both stages of our trainer train through it
(the alignment stage with its ``loss_func``). A trainer that wrote its own training loop would
train a different model on every rank.

Evaluation metrics are gathered by RecBole's ``_map_reduce``: each rank's averages, weighted by
its batch count. ``DistributedSampler`` gives every rank the same number of users (padding
with repeats), so this is the exact per-user mean when ``nproc`` divides the number of
evaluated users; otherwise up to ``nproc - 1`` users count twice (RecBole's behaviour, kept).
"""

from __future__ import annotations

import functools
import os


def _uses_cuda(config_dict) -> bool:
    import torch

    return bool(str(config_dict.get("gpu_id", ""))) and torch.cuda.is_available()


def check_enough_gpus(gpu_id, nproc: int) -> None:
    """RecBole asserts (bare ``AssertionError``) that gpu_id lists one GPU per DDP process."""
    listed = [g for g in str(gpu_id).split(",") if g.strip()]
    nproc = int(nproc or 1)
    if len(listed) < nproc:
        raise ValueError(
            f"nproc = {nproc} DDP processes on CUDA need {nproc} GPUs, but gpu_id = {str(gpu_id)!r} lists "
            f"{len(listed)}. List more GPUs (e.g. --gpu_id=0,1), lower --nproc, or set --use_gpu=False to "
            f"run the processes on the CPU (gloo)."
        )


def _wrap_init_device(original):
    @functools.wraps(original)
    def _init_device(self):
        cfg = self.final_config_dict
        if cfg.get("use_gpu") is False:
            # RecBole 1.2.1 declares use_gpu but never reads it: no GPU listed = CPU
            cfg["gpu_id"] = ""
        if "local_rank" not in cfg:
            return original(self)  # single process: RecBole's own path
        if _uses_cuda(cfg):
            gpu_id = cfg.get("gpu_id", "")
            cfg["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
            check_enough_gpus(cfg["gpu_id"], cfg.get("nproc"))
            return original(self)  # DDP on GPUs (nccl): RecBole's own path
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
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, int(cfg.get("nproc") or 1))))
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
    """Give every rank rank 0's ``saved_model_file`` and run id (rank 0 alone writes the file)."""

    @functools.wraps(original)
    def __init__(self, config, model):
        original(self, config, model)
        if not config["single_spec"] and hasattr(self, "saved_model_file"):
            import torch.distributed as dist

            name = [self.saved_model_file, getattr(self, "run_id", None)]
            dist.broadcast_object_list(name, src=0)
            self.saved_model_file, self.run_id = name

    __init__.__reg4rec_wrapped__ = True
    return __init__


def wait_for_every_rank(config) -> None:
    """Under DDP, return once every rank has come here (e.g. after rank 0 wrote a file the others
    read next); nothing on one process."""
    if not config["single_spec"]:
        import torch.distributed as dist

        dist.barrier()


def _wrap_fit(original):
    """All ranks leave ``fit`` together, after rank 0 has written its last checkpoint."""

    @functools.wraps(original)
    def fit(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        wait_for_every_rank(self.config)
        return result

    fit.__reg4rec_wrapped__ = True
    return fit


def _wrap_evaluate(original):
    """Wait until rank 0 has written the checkpoint before any rank loads the best model."""

    @functools.wraps(original)
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            wait_for_every_rank(self.config)
        return original(
            self, eval_data, load_best_model=load_best_model, model_file=model_file, show_progress=show_progress
        )

    evaluate.__reg4rec_wrapped__ = True
    return evaluate


#: settings ``run(nproc=...)`` adds for one DDP launch; meaningless once that launch is over
DDP_RUNTIME_KEYS = ("local_rank", "world_size", "nproc", "offset", "ip", "port")


def without_ddp_runtime(checkpoint: dict) -> dict:
    """``checkpoint`` whose stored config no longer says "join a process group".

    A checkpoint written by a DDP run stores ``local_rank`` / ``world_size`` ...; rebuilding
    its Config as they are would wait forever for the other ranks of a finished run.
    """
    stored = checkpoint.get("config")
    if not isinstance(stored, dict) or "external" not in stored:
        return checkpoint  # a trusted legacy checkpoint holding a Config object
    external = {k: v for k, v in stored["external"].items() if k not in DDP_RUNTIME_KEYS}
    return {**checkpoint, "config": {**stored, "external": external}}


def ensure_dir(dir_path: str) -> None:
    """RecBole's ``ensure_dir`` without its check-then-create race between processes."""
    os.makedirs(dir_path, exist_ok=True)


_ENSURE_DIR_USERS = (
    "recbole.utils.utils",
    "recbole.utils",
    "recbole.utils.logger",
    "recbole.trainer.trainer",
    "recbole.data.dataset.dataset",
    "recbole.data.utils",
)


def install() -> None:
    """Patch the places listed in the module docstring (idempotent)."""
    import importlib

    for name in _ENSURE_DIR_USERS:
        module = importlib.import_module(name)
        if hasattr(module, "ensure_dir"):
            module.ensure_dir = ensure_dir
    from recbole.config import Config
    from recbole.trainer import trainer as trainer_module

    if not getattr(Config._init_device, "__reg4rec_wrapped__", False):
        Config._init_device = _wrap_init_device(Config._init_device)
    trainer_module.AbstractTrainer.__init__ = _abstract_trainer_init
    Trainer = trainer_module.Trainer
    if not getattr(Trainer.__init__, "__reg4rec_wrapped__", False):
        Trainer.__init__ = _wrap_trainer_init(Trainer.__init__)
    if not getattr(Trainer.fit, "__reg4rec_wrapped__", False):
        Trainer.fit = _wrap_fit(Trainer.fit)
    if not getattr(Trainer.evaluate, "__reg4rec_wrapped__", False):
        Trainer.evaluate = _wrap_evaluate(Trainer.evaluate)
