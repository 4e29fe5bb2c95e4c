"""Under DDP, rank 0 alone writes the best checkpoint, and every rank re-reads it when stage 2 starts
(weights and inference settings). The settings chosen on validation at the end of stage 1 must be in
that file before any rank reads it: a rank reading it early ran stage 2 under the provisional
settings while rank 0 used the chosen ones, so every stage-2 validation mixed two settings, and a
run resumed in stage 2 (every rank reading the chosen settings) ended elsewhere than an
uninterrupted one."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from ddp_worker import choose_inference_worker, free_port
from recbole_reg4rec.compat.checkpoints import save_checkpoint


def test_every_rank_reads_the_chosen_inference_settings_after_the_choice(workdir):
    checkpoint_file = str(workdir / "best.pth")
    save_checkpoint({"state_dict": {"weight": torch.zeros(1)},
                     "other_parameter": {"inference_settings": {"score_mode": "id"}}}, checkpoint_file)
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(choose_inference_worker, args=(free_port(), checkpoint_file, queue), nprocs=2, join=True)
    seen = dict(queue.get() for _ in range(2))
    assert seen == {0: {"score_mode": "fused"}, 1: {"score_mode": "fused"}}
