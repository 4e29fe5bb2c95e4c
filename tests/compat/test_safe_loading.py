"""Safe loading: nothing this package reads back (checkpoints, last checkpoints, token caches,
benchmark result files) can run code stored in the file. Each crafted file would create
``PWNED`` when unpickled; every test checks it never appears.

(Refusal of a malicious / legacy checkpoint by ``load_checkpoint`` and ``load_data_and_model``
is in test_foundation.py; these extend it to the other loaders.)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from recbole_reg4rec.compat.checkpoints import (
    UnsafeCheckpointError,
    last_checkpoint_path,
    newest_checkpoint,
)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _assert_not_pwned():
    assert not os.path.exists("PWNED")


def test_exploit_inside_state_dict_is_refused(workdir):
    """Not only the config: a pickled object anywhere in the file is refused."""
    torch.save({"config": {"model": "SASRec"}, "state_dict": {"w": _Exploit()}, "epoch": 0}, "inner.pth")
    from recbole_reg4rec import load_checkpoint

    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint("inner.pth")
    _assert_not_pwned()


def test_resume_never_unpickles_a_planted_last_checkpoint(workdir, fast_sasrec_config):
    """``--resume`` also reads the run's last checkpoint: a malicious one planted there is refused."""
    from recbole_reg4rec.quick_start import run_recbole

    best = "saved/SASRec-Jan-01-2026_00-00-00.pth"  # a plain, safe best checkpoint ...
    os.makedirs("saved")
    torch.save({"epoch": 0, "state_dict": {}}, best)
    os.makedirs(os.path.dirname(last_checkpoint_path(best)), exist_ok=True)
    torch.save({"epoch": 99, "state_dict": _Exploit()}, last_checkpoint_path(best))
    with pytest.raises(UnsafeCheckpointError):
        newest_checkpoint(best)
    with pytest.raises(UnsafeCheckpointError):
        run_recbole(model="SASRec", dataset="toy", config_dict=fast_sasrec_config, resume=best)
    _assert_not_pwned()


def test_token_cache_with_pickled_object_is_rebuilt_not_loaded(workdir, caplog):
    from recbole_reg4rec.tokenizer.cache import SemanticIDCache

    cache = SemanticIDCache(workdir / "tokens")
    path = cache.path("toy", "mpq", "f" * 64)
    path.parent.mkdir(parents=True)
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit()
    np.savez(path, codes=evil, codebook_sizes=np.array([4, 4]), ordered=np.bool_(False),
             report=np.str_("{}"), fingerprint=np.str_("f" * 64), checksum=np.str_("x"))
    assert zipfile.is_zipfile(path) and b"posix" in zipfile.ZipFile(path).read("codes.npy")  # really a pickle
    caplog.set_level(logging.WARNING)
    assert cache.load(path, "f" * 64, n_items=3) is None  # a miss: the tokens are rebuilt
    assert "unreadable or corrupted" in caplog.text
    _assert_not_pwned()


def test_benchmark_result_files_are_json_only(workdir):
    from recbole_reg4rec.benchmark.store import ResultStore

    store = ResultStore(workdir / "out")
    store.cells_dir.mkdir(parents=True)
    store.cell_path("evil").write_bytes(pickle.dumps(_Exploit()))
    assert store.load("evil") is None  # not JSON: treated as missing, the cell is redone
    store.cell_path("list").write_text(json.dumps([1, 2]))
    assert store.load("list") is None
    store.save("good", {"status": "ok", "test": {"ndcg@10": 0.5}})
    assert store.load("good") == {"status": "ok", "test": {"ndcg@10": 0.5}}
    assert not list(store.cells_dir.glob("*.tmp*"))  # written atomically, no temporary left
    _assert_not_pwned()


def test_recbole_saved_dataset_and_dataloader_pickles_are_never_loaded(workdir, fast_sasrec_config):
    """RecBole unpickles these files whenever they exist under checkpoint_dir."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    from recbole_reg4rec.compat.safe_pickles import UnsafePickleError

    config = Config(model="SASRec", dataset="toy", config_dict=fast_sasrec_config)
    os.makedirs("saved")
    planted = "saved/toy-SequentialDataset.pth"
    with open(planted, "wb") as f:
        pickle.dump(_Exploit(), f)
    with pytest.raises(UnsafePickleError) as info:
        create_dataset(config)
    assert planted in str(info.value) and "Delete the file" in str(info.value)
    os.remove(planted)

    dataset = create_dataset(config)
    with open("saved/toy-for-SASRec-dataloader.pth", "wb") as f:
        pickle.dump(_Exploit(), f)
    with pytest.raises(UnsafePickleError):
        data_preparation(config, dataset)
    _assert_not_pwned()
    assert pickle.loads(pickle.dumps({"a": 1})) == {"a": 1}  # the process's own pickle is untouched
