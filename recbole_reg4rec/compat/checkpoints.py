"""Checkpoints that load with ``torch.load(weights_only=True)``.

RecBole 1.2.1 pickles its whole ``Config`` object into every checkpoint. torch >= 2.6 refuses to
unpickle that by default, and allowing it would let any checkpoint a user merely *loads* run
arbitrary code. Our checkpoints store the configuration as plain data instead: the model and
dataset names, the user's own settings (``external``, enough to rebuild the exact ``Config``)
and the final merged settings (``final``, for people reading the file). Tensors, numbers,
strings, lists and dicts are all the weights-only unpickler needs.

Legacy RecBole checkpoints are refused with an explanation; a user who trusts such a file can
opt in per call with ``trusted=True``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import pickle
import sys
import tempfile
from typing import Any, Mapping, Optional

import numpy as np
import torch

CHECKPOINT_FORMAT = "recbole_reg4rec.checkpoint/1"


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint needs full unpickling (arbitrary code execution) to load."""


class CorruptCheckpointError(RuntimeError):
    """The checkpoint file is missing, truncated or not a torch checkpoint."""


def to_plain(value: Any) -> Any:
    """Recursively convert a config value into data the weights-only unpickler accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, np.generic):  # np.float64 subclasses float but pickles as numpy
            return value.item()
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    if isinstance(value, type):
        return value.__name__
    return str(value)


def config_to_plain(config) -> dict:
    """Plain-data record of a RecBole ``Config`` (see module docstring)."""
    model = config["model"]
    return {
        "model": model if isinstance(model, str) else model.__name__,
        "dataset": config["dataset"],
        "external": to_plain(config.external_config_dict),
        "final": to_plain(config.final_config_dict),
    }


@contextlib.contextmanager
def _without_command_line():
    """RecBole's Config parses ``--key=value`` from sys.argv; a rebuilt config must not."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def config_from_checkpoint(checkpoint: Mapping, overrides: Optional[dict] = None):
    """Rebuild the ``Config`` a checkpoint was trained with.

    Args:
        checkpoint: a loaded checkpoint (ours, or a trusted legacy one holding a ``Config``).
        overrides: settings to change on top, e.g. ``{"gpu_id": "", "use_gpu": False}``.
    """
    from recbole.config import Config

    stored = checkpoint["config"]
    if isinstance(stored, Config):  # legacy checkpoint, explicitly trusted by the caller
        for key, value in (overrides or {}).items():
            stored[key] = value
        return stored
    config_dict = dict(stored["external"])
    config_dict.update(overrides or {})
    with _without_command_line():
        return Config(model=stored["model"], dataset=stored["dataset"], config_dict=config_dict)


def save_checkpoint(state: dict, path: str) -> None:
    """Write ``state`` to ``path`` atomically: readers see the old file or the new one, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pth", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str, map_location=None, trusted: bool = False) -> dict:
    """Load a checkpoint without executing code from it.

    Args:
        path: checkpoint file.
        map_location: as for ``torch.load``.
        trusted: allow full unpickling for a legacy RecBole checkpoint *you* wrote or trust.

    Raises:
        CorruptCheckpointError: missing, truncated or not a checkpoint.
        UnsafeCheckpointError: a legacy checkpoint that needs full unpickling, and ``trusted`` is False.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CorruptCheckpointError(f"checkpoint {path!r} does not exist.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not trusted:
            raise UnsafeCheckpointError(
                f"{path!r} cannot be loaded safely: it holds pickled Python objects ({_first_line(err)}), "
                f"most likely a legacy RecBole checkpoint that pickles its Config. Loading it would run "
                f"whatever code the file contains. If you wrote or trust this file, load it explicitly "
                f"with `recbole_reg4rec.load_data_and_model({path!r}, trusted=True)` (or "
                f"`load_checkpoint(..., trusted=True)`); re-saving it through recbole_reg4rec makes it safe."
            ) from None
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError) as err:
        raise CorruptCheckpointError(
            f"checkpoint {path!r} is truncated or corrupted ({_first_line(err)}); re-train or restore it."
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- RecBole Trainer integration -------------------------------------------------------------


def _trainer_save_checkpoint(self, epoch, verbose=True, **kwargs):
    """Replacement for ``recbole.trainer.Trainer._save_checkpoint`` writing a safe checkpoint.

    Trainers may add their own plain state by defining ``extra_checkpoint_state() -> dict``
    (restored by ``restore_extra_checkpoint_state(checkpoint)``).
    """
    from recbole.utils import set_color

    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": config_to_plain(self.config),
        "epoch": int(epoch),
        "cur_step": int(self.cur_step),
        "best_valid_score": to_plain(self.best_valid_score),
        "state_dict": self.model.state_dict(),
        "other_parameter": self.model.other_parameter(),
        "optimizer": self.optimizer.state_dict(),
    }
    if hasattr(self, "extra_checkpoint_state"):
        state["extra"] = self.extra_checkpoint_state()
    save_checkpoint(state, saved_model_file)
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def _trainer_resume_checkpoint(self, resume_file):
    """Replacement for ``Trainer.resume_checkpoint`` using :func:`load_checkpoint`."""
    resume_file = str(resume_file)
    self.saved_model_file = resume_file
    checkpoint = load_checkpoint(resume_file, map_location=self.device)
    self.start_epoch = checkpoint["epoch"] + 1
    self.cur_step = checkpoint["cur_step"]
    self.best_valid_score = checkpoint["best_valid_score"]
    stored_model = checkpoint["config"]["model"]
    if str(stored_model).lower() != str(self.config["model"]).lower():
        self.logger.warning(
            f"Checkpoint {resume_file} was trained with model {stored_model}, not {self.config['model']}; "
            "loading its state_dict may fail."
        )
    self.model.load_state_dict(checkpoint["state_dict"])
    self.model.load_other_parameter(checkpoint.get("other_parameter"))
    self.optimizer.load_state_dict(checkpoint["optimizer"])
    if hasattr(self, "restore_extra_checkpoint_state"):
        self.restore_extra_checkpoint_state(checkpoint.get("extra") or {})
    self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


def _wrap_evaluate(original_evaluate):
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return original_evaluate(self, eval_data, load_best_model=False, show_progress=show_progress)

    evaluate.__doc__ = original_evaluate.__doc__
    evaluate.__wrapped__ = original_evaluate
    return evaluate


def install() -> None:
    """Make RecBole's Trainer write and read safe checkpoints (idempotent)."""
    from recbole.trainer import Trainer

    Trainer._save_checkpoint = _trainer_save_checkpoint
    Trainer.resume_checkpoint = _trainer_resume_checkpoint
    if not hasattr(Trainer.evaluate, "__wrapped__"):
        Trainer.evaluate = _wrap_evaluate(Trainer.evaluate)
