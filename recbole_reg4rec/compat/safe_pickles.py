"""RecBole's saved datasets and dataloaders are pickles: never load them.

``recbole.data.create_dataset`` unpickles ``<checkpoint_dir>/<dataset>-<DatasetClass>.pth`` (or
``dataset_save_path``) and ``data_preparation`` unpickles
``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth`` (or ``dataloaders_save_path``)
*whenever such a file exists*, so any file planted under ``saved/`` with that name would run
its code in the next run. We replace the ``pickle`` module seen by ``recbole.data.utils`` only
with one whose ``load`` refuses, naming the file and the fix; ``dump`` (``save_dataset`` /
``save_dataloaders``) still works, and nothing else in the process is affected.
"""

from __future__ import annotations

import pickle
import types


class UnsafePickleError(ValueError):
    """RecBole was about to unpickle a saved dataset or dataloaders file."""


def _refuse_load(file, *args, **kwargs):
    name = getattr(file, "name", "<file>")
    raise UnsafePickleError(
        f"{name}: RecBole stores saved datasets / dataloaders (save_dataset, save_dataloaders, "
        f"dataset_save_path, dataloaders_save_path) as pickles, and loading a pickle runs any code it "
        f"contains, so recbole_reg4rec does not load them. Delete the file: the dataset is rebuilt from "
        f"the atomic files (and set save_dataset / save_dataloaders to False to stop writing it)."
    )


def _guarded_pickle() -> types.ModuleType:
    guarded = types.ModuleType("pickle_without_load")
    guarded.__dict__.update({k: v for k, v in vars(pickle).items() if not k.startswith("__")})
    guarded.load = guarded.loads = _refuse_load
    guarded.Unpickler = None
    guarded.__reg4rec_guarded__ = True
    return guarded


def install() -> None:
    """Guard ``recbole.data.utils`` (idempotent)."""
    import recbole.data.utils as data_utils

    if not getattr(data_utils.pickle, "__reg4rec_guarded__", False):
        data_utils.pickle = _guarded_pickle()
