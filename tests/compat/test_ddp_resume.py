"""A 2-process DDP REG4Rec run (gloo on the CPU) killed in stage 1 or in the alignment stage and
resumed with ``run(..., nproc=2, resume=...)`` ends with exactly the weights and metrics of an
uninterrupted 2-process run: its checkpoints hold every rank's RNG states (and the DDP sampler's
epoch), and each rank continues its own sequence (dropout draws from it: REG4Rec's 0.5)."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import pytest
import torch

from ddp_resume_helpers import ddp_run, killed_run
from kill_points import tiny_config
from kill_points import assert_same_as_reference
from recbole_reg4rec.compat.checkpoints import last_checkpoint_path, load_checkpoint


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 2-process run: its result, best checkpoint and token cache."""
    root = tmp_path_factory.mktemp("ddp_reference")
    old_cwd, old_argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = ["pytest"]  # RecBole's Config reads --key=value flags from the command line
    try:
        config = tiny_config(root)
        result = ddp_run(config)
        [best] = glob.glob(str(root / "saved" / "REG4Rec-*.pth"))
        yield {"result": result, "best": load_checkpoint(best), "tokens": str(root / "tokens")}
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv


def _resumed_equals_reference(workdir: Path, reference, point: str, expected_last_epoch: int):
    config = tiny_config(workdir, tokenizer_cache_dir=reference["tokens"])
    killed_run(config, point)
    [best_file] = glob.glob("saved/REG4Rec-*.pth")
    last = load_checkpoint(last_checkpoint_path(best_file))
    assert last["epoch"] == expected_last_epoch
    per_rank = last["rng_per_rank"]
    assert len(per_rank) == 2 and not torch.equal(per_rank[0]["torch"], per_rank[1]["torch"])
    assert per_rank[0]["sampler_epoch"] == last["rng"]["sampler_epoch"]

    result = ddp_run(config, resume=best_file)
    assert_same_as_reference(result, best_file, reference)  # test and valid metrics, best epoch, weights
    assert not os.path.exists(last_checkpoint_path(best_file))


def test_ddp_killed_in_stage1_resumes_bit_identically(workdir, reference):
    _resumed_equals_reference(workdir, reference, "stage1", expected_last_epoch=0)


def test_ddp_killed_in_alignment_stage_resumes_bit_identically(workdir, reference):
    assert reference["best"]["extra"]["stage"] in (1, 2)
    _resumed_equals_reference(workdir, reference, "stage2", expected_last_epoch=3)
