"""Under DDP (2 gloo processes on the CPU) every update of an alignment epoch steps with the
gradient a single process computes for the two ranks' batches together: the mean of their PARS
losses' gradients. DDP averages them inside RecBole's ``_train_epoch``; nothing of ours does."""

from __future__ import annotations

import copy

import torch
import torch.multiprocessing as mp

from ddp_worker import free_port
from recbole_reg4rec.alignment import AlignmentSettings, batch_loss
from recbole_reg4rec.run import build_model, load_data, make_config
from synthetic import write_synthetic_dataset
from tiny_config import REG4REC_STAGE1

#: REG4Rec on tiny data with its alignment settings; two inner updates per batch of sampled paths
CONFIG = dict(REG4REC_STAGE1, use_gpu=False, train_batch_size=256, pars_enabled=True, pars_group_size=4,
              pars_inner_steps=2, pars_learning_rate=0.01, msra_horizon=0, state="WARNING")


def stage2_updates_worker(rank, config_dict, out_dir):
    """One rank: one alignment epoch from the initial weights (stage 1 is not under test), saving
    for every update the weights it starts from, the paths it is computed on, the random state its
    loss starts from (the supervised term samples codebook orders) and the gradient the optimizer
    steps with."""
    import torch.distributed as dist

    import recbole_reg4rec.alignment.epoch as epoch_module
    from recbole_reg4rec.run import prepare_run

    run = prepare_run(make_config("REG4Rec", "toy", None, dict(config_dict, local_rank=rank)))
    trainer, model = run.trainer, run.model
    trainer._switch_to_stage2(first_epoch=0)
    updates = []
    original_batch_loss = epoch_module.batch_loss

    def batch_loss(policy, rollouts, settings):
        updates.append({"weights": copy.deepcopy(policy.state_dict()), "rollouts": copy.deepcopy(rollouts),
                        "rng": torch.get_rng_state()})
        return original_batch_loss(policy, rollouts, settings)

    epoch_module.batch_loss = batch_loss
    trainer.optimizer.register_step_pre_hook(lambda *_: updates[-1].update(
        grads={name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}))
    trainer._train_epoch(run.train_data, 0)
    torch.save(updates, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_alignment_updates_step_with_the_single_process_gradient(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    config = dict(CONFIG, data_path=str(workdir / "data"), tokenizer_cache_dir=str(workdir / "tokens"))
    ddp = dict(config, world_size=2, nproc=2, ip="127.0.0.1", port=free_port(), offset=0)
    mp.spawn(stage2_updates_worker, args=(ddp, str(workdir)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(workdir / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert len(rank0) == len(rank1) >= 4 and len(rank0) % 2 == 0  # two updates per batch, several batches

    single = make_config("REG4Rec", "toy", None, config)
    _, train_data, _, _ = load_data(single)
    model, _ = build_model(single, train_data)
    model.eval()
    settings = AlignmentSettings.from_config(single)
    names = [name for name, _ in model.named_parameters()]
    ranks_differ = 0
    for update0, update1 in zip(rank0, rank1):
        assert all(torch.equal(update0["weights"][k], update1["weights"][k]) for k in update0["weights"])  # one model
        model.load_state_dict(update0["weights"])
        own = []  # each rank's batch alone, in this one process
        for update in (update0, update1):
            model.zero_grad(set_to_none=True)
            torch.set_rng_state(update["rng"])
            batch_loss(model, update["rollouts"], settings)["loss"].backward()
            own.append({n: torch.zeros_like(p) if p.grad is None else p.grad.clone() for n, p in model.named_parameters()})
        for name in names:
            expected = (own[0][name] + own[1][name]) / 2
            torch.testing.assert_close(update0["grads"][name], expected, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
            torch.testing.assert_close(update1["grads"][name], expected, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
        ranks_differ += any(not torch.allclose(own[0][n], own[1][n], rtol=1e-3, atol=1e-5) for n in names)
    assert ranks_differ == len(rank0)  # the ranks' own gradients differ: the average is what made them one
