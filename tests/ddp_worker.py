"""A DDP worker for tests: the package's run recipe (:mod:`recbole_reg4rec.run`), plus what a test needs to see —
every rank's final weights (are the ranks still training one model?) and the stage reached.

Spawned by ``torch.multiprocessing``; children get the parent's ``sys.path``, so this module
(under ``tests/``) is importable there.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

import recbole_reg4rec  # noqa: F401  (compat layer: gloo on CPU, model registry)


def free_port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def ddp_worker(rank, model_name, dataset_name, config_dict, queue):
    from recbole_reg4rec.run import make_config, prepare_run

    config = make_config(model_name, dataset_name, None, dict(config_dict, local_rank=rank))
    run = prepare_run(config)
    trainer, train_data, valid_data, test_data = run.trainer, run.train_data, run.valid_data, run.test_data
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)

    flat = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    if rank == 0:
        queue.put(
            {
                "backend": dist.get_backend(),
                "device": str(config["device"]),
                "max_weight_gap": max(float((g - gathered[0]).abs().max()) for g in gathered),
                "stage": getattr(trainer, "stage", None),
                "test_result": dict(test_result),
                "saved_model_file": trainer.saved_model_file,
            }
        )
    dist.barrier()  # as run_recbole: no rank shuts its process group down while a peer still uses it
    dist.destroy_process_group()


def run_ddp(model_name, dataset_name, config_dict, nproc=2):
    """Run :func:`ddp_worker` on ``nproc`` gloo ranks; return rank 0's report."""
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict, world_size=nproc, nproc=nproc, ip="127.0.0.1", port=free_port(), offset=0)
    mp.spawn(ddp_worker, args=(model_name, dataset_name, config_dict, queue), nprocs=nproc, join=True)
    return queue.get()


def choose_inference_worker(rank, port, checkpoint_file, queue):
    """``REG4RecTrainer.choose_auto_inference`` on one of 2 gloo ranks, with a model stand-in whose one ``auto``
    setting ``score_mode`` is chosen to be ``"fused"`` and a rank 0 that is slow to write the best checkpoint;
    then every rank reads that checkpoint's inference settings, as ``fit`` does before stage 2."""
    import logging
    import time

    import recbole_reg4rec.trainer.reg4rec_trainer as module
    from recbole_reg4rec.compat.checkpoints import load_checkpoint
    from recbole_reg4rec.trainer import REG4RecTrainer

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)

    class Model(torch.nn.Module):
        auto_inference = ("score_mode",)

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.score_mode = "id"

        def configure_inference(self, score_mode):
            self.score_mode = score_mode

        def other_parameter(self):
            return {"inference_settings": {"score_mode": self.score_mode}}

        def load_other_parameter(self, para):
            self.configure_inference(**(para or {})["inference_settings"])

    def select(model, values, logger):
        model.configure_inference(score_mode="fused")
        return {"score_mode": "fused"}, [({"score_mode": "fused"}, 0.5)]

    save = module.save_checkpoint

    def slow_save(state, path, **kwargs):
        time.sleep(1.0)
        save(state, path, **kwargs)

    module.select_inference_settings = select
    module.save_checkpoint = slow_save
    trainer = REG4RecTrainer.__new__(REG4RecTrainer)  # only what choose_auto_inference reads
    trainer.config = {"single_spec": False, "local_rank": rank}
    trainer.model, trainer.saved_model_file, trainer.device = Model(), checkpoint_file, torch.device("cpu")
    trainer.logger, trainer.valid_metric = logging.getLogger(__name__), "NDCG@5"
    trainer.choose_auto_inference(valid_data=[None], saved=True)
    queue.put((rank, load_checkpoint(checkpoint_file)["other_parameter"]["inference_settings"]))
    dist.barrier()
    dist.destroy_process_group()
