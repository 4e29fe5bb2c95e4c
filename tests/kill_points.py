"""Tiny REG4Rec runs for the crash-safety / reproducibility tests, and a driver that SIGKILLs
its own process at a chosen point (``python kill_points.py <point> <config.json>``).

Kill points:

* ``stage1``: at the start of stage-1 epoch 1 (after the last checkpoint of that epoch is written);
* ``stage2``: at the start of the second alignment epoch;
* ``tokenizer``: in the middle of writing the token cache file (half the bytes written).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Dict

from synthetic import write_synthetic_dataset
from tiny_config import tiny_config as base_config

#: a two-stage REG4Rec run of a few seconds
TINY: Dict = base_config(
    use_gpu=False,
    epochs=3,
    stopping_step=10,
    train_batch_size=64,
    eval_batch_size=100000,
    MAX_ITEM_LIST_LENGTH=8,
    n_heads=2,
    metrics=["Recall", "NDCG"],
    topk=[5],
    valid_metric="NDCG@5",
    beam_size=10,
    crss_warmup_epochs=1,
    n_codebooks=3,
    codebook_size=4,
    mpq_feature_source="side_info",
    feature_dim=8,
    mpq_expert_hidden=16,
    mpq_latent_dim=8,
    mpq_epochs=3,
    pars_epochs=2,
    pars_group_size=4,
    msra_horizon=2,
    state="WARNING",
)


def tiny_config(root: Path, **extra) -> Dict:
    """Config of a seconds-long two-stage REG4Rec run on a 30-user synthetic set under ``root``."""
    write_synthetic_dataset(root / "data", "tiny", n_users=30, n_items=24, n_clusters=3)
    cfg = dict(TINY, data_path=str(root / "data"), tokenizer_cache_dir=str(root / "tokens"),
               checkpoint_dir=str(root / "saved"))
    cfg.update(extra)
    return cfg


def _kill_self():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    if point == "stage1":
        from recbole.trainer import Trainer

        original = Trainer._train_epoch

        def train_epoch(self, data, epoch_idx, *args, **kwargs):
            if epoch_idx == 1:
                _kill_self()
            return original(self, data, epoch_idx, *args, **kwargs)

        Trainer._train_epoch = train_epoch
    elif point == "stage2":
        from recbole_reg4rec.trainer import REG4RecTrainer

        original = REG4RecTrainer._alignment_epoch
        calls = []

        def alignment_epoch(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                _kill_self()
            return original(self, *args, **kwargs)

        REG4RecTrainer._alignment_epoch = alignment_epoch
    elif point == "tokenizer":
        import numpy as np

        def savez(file, **arrays):
            import io

            buffer = io.BytesIO()
            np.savez.__wrapped_original__(buffer, **arrays)
            data = buffer.getvalue()
            file.write(data[: len(data) // 2])
            file.flush()
            os.fsync(file.fileno())
            _kill_self()

        savez.__wrapped_original__ = np.savez
        np.savez = savez
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def main(point: str, config_file: str) -> None:
    import torch

    torch.set_num_threads(1)  # as the tests' in-process runs: identical float arithmetic
    import recbole_reg4rec  # noqa: F401
    from recbole_reg4rec.quick_start import run_recbole

    config = json.loads(Path(config_file).read_text())
    _arm(point)
    run_recbole(model="REG4Rec", dataset="tiny", config_dict=config)
    raise SystemExit(f"the run finished without reaching kill point {point!r}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1], sys.argv[2])


def assert_same_as_reference(result, best_file, reference):
    """A resumed run ended exactly as the uninterrupted ``reference`` run: metrics, best epoch, weights."""
    import torch

    from recbole_reg4rec.compat.checkpoints import load_checkpoint

    assert result["test_result"] == reference["result"]["test_result"]
    assert result["best_valid_result"] == reference["result"]["best_valid_result"]
    best = load_checkpoint(best_file)
    assert best["epoch"] == reference["best"]["epoch"]
    for name, tensor in reference["best"]["state_dict"].items():
        assert torch.equal(best["state_dict"][name], tensor), name
