"""Checkpoints that load with ``torch.load(weights_only=True)``.

RecBole 1.2.1 pickles its whole ``Config`` object into every checkpoint. torch >= 2.6 refuses to
unpickle that by default, and allowing it would let any checkpoint a user merely *loads* run
arbitrary code. Our checkpoints store the configuration as plain data instead: the model and
dataset names, the user's own settings (``external``, enough to rebuild the exact ``Config``)
and the final merged settings (``final``, for people reading the file). Tensors, numbers,
strings, lists and dicts are all the weights-only unpickler needs.

Legacy RecBole checkpoints are refused with an explanation; a user who trusts such a file can
opt in per call with ``trusted=True``.

Crash safety. Every checkpoint also holds the random number generator states (torch, CUDA,
numpy, Python's ``random`` and the training dataloader's generator), the best validation result
and the model's epoch counters, so a run resumed from it repeats exactly what the uninterrupted
run would have done. Besides RecBole's *best* checkpoint (``saved_model_file``, written when the
validation score improves, used for the final evaluation) the trainer writes a *last*
checkpoint at the start of every epoch to ``<checkpoint_dir>/last/<same name>``: a killed run
loses at most one epoch. ``Trainer.resume_checkpoint(best or last file)`` prefers the newer last
checkpoint; the last file is removed once the best model is loaded for the final evaluation.
A DDP checkpoint holds every rank's RNG states (``rng_per_rank``), so each rank of a resumed
multi-process run continues its own random sequence.

Runs sharing a folder. RecBole names checkpoints ``<Model>-<time to the second>.pth``, so two
runs started in the same second would overwrite each other's files. Every ``Config`` gets a run
id (config key ``run_id``: 8 random hex digits unless set), which the trainer appends:
``<checkpoint_dir>/<Model>-<time>-<run id>.pth`` (and ``last/<same name>``), logged when the
trainer starts. A name already on disk is never chosen, and a run never replaces a checkpoint it
did not write itself (or resume from): its first write creates the file exclusively. The run id
also enters RecBole's log-file name (a hash of the config), so log and tensorboard folders of
such runs differ too. ``--resume`` takes a checkpoint file or a run id.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import glob
import os
import pickle
import random
import re
import secrets
from typing import Any, Mapping, Optional

import numpy as np
import torch

from ..run import make_config  # its argv guard: a rebuilt config never reads sys.argv
from ..utils.atomic import atomic_open

CHECKPOINT_FORMAT = "recbole_reg4rec.checkpoint/1"


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint needs full unpickling (arbitrary code execution) to load."""


class CorruptCheckpointError(RuntimeError):
    """The checkpoint file is missing, truncated or not a torch checkpoint."""


class CheckpointMismatchError(ValueError):
    """``--resume`` names a checkpoint of another model or dataset."""


class CheckpointCollisionError(RuntimeError):
    """Another run's checkpoint sits where this run would write its own."""


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


#: Settings of *how* a run was started, not of the model: never stored, so a rebuilt config
#: does not resume (or launch DDP) again.
_NOT_STORED = ("resume_checkpoint", "resume")


# --- run ids and checkpoint names ------------------------------------------------------------

#: config key naming one run; checkpoint names end with it
RUN_ID_KEY = "run_id"
_VALID_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def new_run_id() -> str:
    """8 hex digits from the operating system's entropy. Never from the seeded generators:
    drawing from them would change what the run computes."""
    return secrets.token_hex(4)


def assign_run_id(config) -> None:
    """Config hook: give the config a run id unless the user set ``run_id`` (which is checked)."""
    final = config.final_config_dict
    run_id = final.get(RUN_ID_KEY)
    if run_id is None or str(run_id) == "":
        final[RUN_ID_KEY] = new_run_id()
    elif not _VALID_RUN_ID.match(str(run_id)):
        raise ValueError(
            f"run_id = {run_id!r} cannot be part of a file name: use up to 40 letters, digits, '-' or '_', "
            f"or leave run_id unset for a random one."
        )
    else:
        final[RUN_ID_KEY] = str(run_id)


def _claim_checkpoint_name(self) -> None:
    """Append the run id to RecBole's ``<Model>-<time>.pth``; never pick a name already on disk."""
    base_id = str(self.config[RUN_ID_KEY] or new_run_id())
    stem, ext = os.path.splitext(self.saved_model_file)
    run_id = base_id
    path = f"{stem}-{run_id}{ext}"
    while os.path.exists(path) or os.path.exists(last_checkpoint_path(path)):
        run_id = f"{base_id}-{secrets.token_hex(2)}"  # that name is another run's (e.g. a reused run_id)
        path = f"{stem}-{run_id}{ext}"
    self.run_id = run_id
    self.saved_model_file = path
    self._reg4rec_own_files = set()
    self.logger.info(
        f"Run {run_id}: best model {path}, resume point {last_checkpoint_path(path)} "
        f"(continue a killed run with --resume={path})"
    )


def _wrap_trainer_init(original):
    @functools.wraps(original)
    def __init__(self, config, model):
        original(self, config, model)
        _claim_checkpoint_name(self)

    __init__.__reg4rec_checkpoint_names__ = True
    return __init__


def _write_own_checkpoint(self, state: dict, path: str) -> None:
    """Write ``state`` to ``path``, a file this run created or resumed from; create it otherwise."""
    own = self.__dict__.setdefault("_reg4rec_own_files", set())
    key = os.path.abspath(path)
    if key in own:
        save_checkpoint(state, path)
        return
    try:
        save_checkpoint(state, path, exclusive=True)
    except FileExistsError:
        raise CheckpointCollisionError(
            f"{path} belongs to another run and was left untouched; run {getattr(self, 'run_id', '?')} stops "
            f"here. Give concurrent runs distinct run_id values (or leave run_id unset) or their own checkpoint_dir."
        ) from None
    own.add(key)


def find_checkpoint(resume: str, checkpoint_dir: str) -> str:
    """The checkpoint file ``--resume`` names: a path, or the run id at the end of a file name
    under ``checkpoint_dir`` (its best file, or its last one when no best file was written)."""
    resume = str(resume)
    if os.path.isfile(resume) or os.sep in resume or resume.endswith(".pth"):
        return resume
    best = glob.glob(os.path.join(glob.escape(checkpoint_dir), f"*-{glob.escape(resume)}.pth"))
    last = glob.glob(os.path.join(glob.escape(checkpoint_dir), "last", f"*-{glob.escape(resume)}.pth"))
    found = sorted(set(best) | {b for b in map(best_checkpoint_path, last) if os.path.exists(b)}) or sorted(last)
    if len(found) != 1:
        what = "no checkpoint" if not found else f"{len(found)} checkpoints ({', '.join(found)})"
        raise FileNotFoundError(
            f"--resume={resume}: {what} of run {resume!r} in {checkpoint_dir}, and no such file. "
            f"Give the checkpoint file itself (its name is logged when a run starts)."
        )
    return found[0]


def check_resumable(checkpoint: Mapping, path: str, model, dataset) -> None:
    """Refuse, in one line, to continue ``model`` on ``dataset`` from another run's checkpoint."""
    stored = checkpoint.get("config")
    if not isinstance(stored, Mapping) or "model" not in stored or "dataset" not in stored:
        raise CorruptCheckpointError(
            f"{path!r} records no model and dataset: it was not written by a recbole_reg4rec trainer and "
            f"cannot be resumed. Resume from the checkpoint a run logged when it started."
        )
    model = model if isinstance(model, str) else model.__name__
    if str(stored["model"]).lower() != model.lower() or str(stored["dataset"]) != str(dataset):
        raise CheckpointMismatchError(
            f"--resume={path} continues model {stored['model']} on dataset {stored['dataset']}, but this run "
            f"trains {model} on {dataset}; nothing was trained or written. Resume with "
            f"--model={stored['model']} --dataset={stored['dataset']}, or give this model's own checkpoint."
        )


def resume_file_for(resume: str, config) -> str:
    """Checked ``--resume`` target of a run with ``config``, before that run loads or writes anything.

    Raises:
        FileNotFoundError, CorruptCheckpointError, UnsafeCheckpointError, CheckpointMismatchError:
            each with a one-line message saying what to change.
    """
    path = find_checkpoint(resume, config["checkpoint_dir"])
    newest = newest_checkpoint(path)
    check_resumable(load_checkpoint(newest, map_location="cpu"), newest, config["model"], config["dataset"])
    return path


def config_to_plain(config) -> dict:
    """Plain-data record of a RecBole ``Config`` (see module docstring)."""
    model = config["model"]
    external = {k: v for k, v in config.external_config_dict.items() if k not in _NOT_STORED}
    final = {k: v for k, v in config.final_config_dict.items() if k not in _NOT_STORED}
    return {
        "model": model if isinstance(model, str) else model.__name__,
        "dataset": config["dataset"],
        "external": to_plain(external),
        "final": to_plain(final),
    }


# --- random number generator states ----------------------------------------------------------


def rng_state(train_data=None) -> dict:
    """Every RNG state a training epoch draws from, as data ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(x) for x in internal], "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    generator = getattr(train_data, "generator", None)
    if isinstance(generator, torch.Generator):
        state["dataloader"] = generator.get_state()
    sampler = getattr(train_data, "sampler", None)  # DDP: the order of an epoch depends on its epoch number
    if isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
        state["sampler_epoch"] = int(sampler.epoch)
    return state


def restore_rng_state(state: Mapping, train_data=None) -> None:
    """Inverse of :func:`rng_state` (parts missing from ``state`` are left as they are)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if "numpy" in state:
        n = state["numpy"]
        # checkpoints load with map_location=<training device>: the saved states may sit on a GPU
        np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
    if "python" in state:
        p = state["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    generator = getattr(train_data, "generator", None)
    if "dataloader" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["dataloader"].cpu())
    sampler = getattr(train_data, "sampler", None)
    if "sampler_epoch" in state and isinstance(sampler, torch.utils.data.distributed.DistributedSampler):
        sampler.set_epoch(int(state["sampler_epoch"]))


def _rng_states_of_every_rank(self) -> list:
    """``[rng_state of rank 0, of rank 1, ...]`` (one entry without DDP). A collective under DDP:
    every rank calls it at the same point, where it saves a checkpoint."""
    own = rng_state(getattr(self, "_reg4rec_train_data", None))
    if self.config["single_spec"]:
        return [own]
    import torch.distributed as dist

    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, own)
    return states


def _rng_state_to_restore(self, checkpoint: Mapping, resume_file: str) -> Optional[dict]:
    """This rank's RNG states from ``checkpoint`` (rank 0's for a single process)."""
    per_rank = checkpoint.get("rng_per_rank")
    if self.config["single_spec"] or not per_rank:
        return checkpoint.get("rng")
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    if len(per_rank) != world:
        self.logger.warning(
            f"{resume_file} holds the RNG states of {len(per_rank)} processes, this run has {world}: "
            "training continues, but not exactly as the interrupted run would have."
        )
        return per_rank[rank] if rank < len(per_rank) else checkpoint.get("rng")
    return per_rank[rank]


#: Plain counters some models keep outside their ``state_dict`` that change what training does
#: (REG4Rec counts epochs in ``_epoch`` for its CRSS warm-up); saved and restored with the weights.
MODEL_COUNTERS = ("_epoch",)


def _model_counters(model) -> dict:
    return {name: int(getattr(model, name)) for name in MODEL_COUNTERS if isinstance(getattr(model, name, None), int)}


def last_checkpoint_path(saved_model_file: str) -> str:
    """Where the per-epoch *last* checkpoint of a run whose best checkpoint is ``saved_model_file`` lives."""
    return os.path.join(os.path.dirname(saved_model_file), "last", os.path.basename(saved_model_file))


def best_checkpoint_path(last_file: str) -> str:
    """Inverse of :func:`last_checkpoint_path`."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(last_file))), os.path.basename(last_file))


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
    return make_config(stored["model"], stored["dataset"], config_dict=config_dict)


def save_checkpoint(state: dict, path: str, exclusive: bool = False) -> None:
    """Write ``state`` to ``path`` atomically: readers see the old file or the new one, never half.

    Args:
        exclusive: only create ``path``; ``FileExistsError`` (file untouched) if it exists.
    """
    with atomic_open(path, "wb", exclusive=exclusive) as f:
        torch.save(state, f)


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


def _training_state(self, epoch, rng_states: list) -> dict:
    """Everything needed to continue training after ``epoch`` (see the module docstring);
    ``rng_states``: :func:`_rng_states_of_every_rank`."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "run_id": getattr(self, "run_id", None),
        "config": config_to_plain(self.config),
        "epoch": int(epoch),
        "cur_step": int(self.cur_step),
        "best_valid_score": to_plain(self.best_valid_score),
        "best_valid_result": to_plain(getattr(self, "best_valid_result", None)),
        "state_dict": self.model.state_dict(),
        "other_parameter": self.model.other_parameter(),
        "optimizer": self.optimizer.state_dict(),
        "rng": rng_states[0],
        "model_counters": _model_counters(self.model),
    }
    if len(rng_states) > 1:
        state["rng_per_rank"] = rng_states
    if hasattr(self, "extra_checkpoint_state"):
        state["extra"] = self.extra_checkpoint_state()
    return state


def _writes_checkpoints(self) -> bool:
    return bool(self.config["single_spec"]) or self.config["local_rank"] == 0


def _trainer_save_checkpoint(self, epoch, verbose=True, **kwargs):
    """Replacement for ``recbole.trainer.Trainer._save_checkpoint`` writing a safe checkpoint.

    Trainers may add their own plain state by defining ``extra_checkpoint_state() -> dict``
    (restored by ``restore_extra_checkpoint_state(checkpoint)``).
    """
    from recbole.utils import set_color

    rng_states = _rng_states_of_every_rank(self)  # every rank, before rank 0 alone goes on
    if not _writes_checkpoints(self):
        return
    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    state = {**_training_state(self, epoch, rng_states), "kind": "best"}
    _write_own_checkpoint(self, state, saved_model_file)
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


def _save_last_checkpoint(self, next_epoch: int) -> None:
    """The state at the start of epoch ``next_epoch``, as if epoch ``next_epoch - 1`` was just saved."""
    rng_states = _rng_states_of_every_rank(self)
    if not _writes_checkpoints(self):
        return
    path = last_checkpoint_path(self.saved_model_file)
    _write_own_checkpoint(self, {**_training_state(self, next_epoch - 1, rng_states), "kind": "last"}, path)


def newest_checkpoint(resume_file: str) -> str:
    """``resume_file``, or its *last* checkpoint when that one exists and is at least as recent."""
    resume_file = str(resume_file)
    last = last_checkpoint_path(resume_file)
    if os.path.abspath(last) == os.path.abspath(resume_file) or not os.path.isfile(last):
        return resume_file
    try:
        newer = load_checkpoint(last)["epoch"] >= load_checkpoint(resume_file)["epoch"]
    except (CorruptCheckpointError, KeyError):
        return resume_file
    return last if newer else resume_file


def _trainer_resume_checkpoint(self, resume_file):
    """Replacement for ``Trainer.resume_checkpoint``: safe loading, RNG states, last checkpoints.

    Given a best checkpoint whose last checkpoint is newer, resumes from the last one. Training
    continues after the checkpoint's epoch with the model, optimizer, early-stopping state, RNG
    states and trainer state (:meth:`restore_extra_checkpoint_state`) it recorded; the best
    model file stays the run's original ``saved_model_file``.
    """
    from recbole.utils import set_color

    resume_file = newest_checkpoint(resume_file)
    checkpoint = load_checkpoint(resume_file, map_location=self.device)
    check_resumable(checkpoint, resume_file, self.config["model"], self.config["dataset"])
    is_last = checkpoint.get("kind") == "last"
    self.saved_model_file = best_checkpoint_path(resume_file) if is_last else resume_file
    # this run continues the interrupted one: its files are ours to replace
    self.run_id = checkpoint.get("run_id") or getattr(self, "run_id", None)
    own = self.__dict__.setdefault("_reg4rec_own_files", set())
    own.update(os.path.abspath(p) for p in (self.saved_model_file, last_checkpoint_path(self.saved_model_file)))
    self.start_epoch = checkpoint["epoch"] + 1
    self.cur_step = checkpoint["cur_step"]
    self.best_valid_score = checkpoint["best_valid_score"]
    if checkpoint.get("best_valid_result") is not None:
        self.best_valid_result = checkpoint["best_valid_result"]
    self.model.load_state_dict(checkpoint["state_dict"])
    self.model.load_other_parameter(checkpoint.get("other_parameter"))
    for name, value in (checkpoint.get("model_counters") or {}).items():
        setattr(self.model, name, int(value))
    self.optimizer.load_state_dict(checkpoint["optimizer"])
    if hasattr(self, "restore_extra_checkpoint_state"):
        self.restore_extra_checkpoint_state(checkpoint.get("extra") or {})
    # applied when the next epoch starts, so nothing drawn before then shifts the sequence
    self._reg4rec_pending_rng = _rng_state_to_restore(self, checkpoint, resume_file)
    self.logger.info(
        set_color("Checkpoint loaded", "blue") + f" ({'last' if is_last else 'best'}: {resume_file}). "
        f"Resume training from epoch {self.start_epoch}; best model file: {self.saved_model_file}"
    )


def _wrap_fit(original_fit):
    """Around every ``fit`` loop: restore a resumed run's RNG states right before its first epoch
    and write the *last* checkpoint at the start of every epoch (when ``saved``)."""

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        self._reg4rec_train_data = train_data
        previous = self.__dict__.get("_train_epoch")  # an instance-level wrapper (e.g. a timing meter)
        train_epoch = self._train_epoch  # that wrapper, or the (subclass's) method

        def _train_epoch(data, epoch_idx, *args, **kwargs):
            pending = self.__dict__.pop("_reg4rec_pending_rng", None)
            if pending:
                restore_rng_state(pending, data)
            if saved:
                _save_last_checkpoint(self, epoch_idx)
            return train_epoch(data, epoch_idx, *args, **kwargs)

        self._train_epoch = _train_epoch  # instance attribute: shadows every subclass's method
        try:
            return original_fit(self, train_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            if previous is None:
                self.__dict__.pop("_train_epoch", None)
            else:
                self._train_epoch = previous

    fit.__doc__ = original_fit.__doc__
    fit.__wrapped__ = original_fit
    fit.__reg4rec_checkpoints__ = True
    return fit


def _wrap_evaluate(original_evaluate):
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
            result = original_evaluate(self, eval_data, load_best_model=False, show_progress=show_progress)
            # training is over: the per-epoch resume point is no longer needed
            if model_file is None and _writes_checkpoints(self):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(last_checkpoint_path(checkpoint_file))
            return result
        return original_evaluate(self, eval_data, load_best_model=False, show_progress=show_progress)

    evaluate.__doc__ = original_evaluate.__doc__
    evaluate.__wrapped__ = original_evaluate
    evaluate.__reg4rec_checkpoints__ = True
    return evaluate


def install() -> None:
    """Make RecBole's Trainer write and read safe checkpoints under per-run names (idempotent)."""
    from recbole.trainer import Trainer

    from . import config_hooks

    config_hooks.add(assign_run_id)
    if not getattr(Trainer.__init__, "__reg4rec_checkpoint_names__", False):
        Trainer.__init__ = _wrap_trainer_init(Trainer.__init__)

    Trainer._save_checkpoint = _trainer_save_checkpoint
    Trainer.resume_checkpoint = _trainer_resume_checkpoint
    # (RecBole's evaluate already has a ``__wrapped__``: it is decorated with torch.no_grad)
    if not getattr(Trainer.evaluate, "__reg4rec_checkpoints__", False):
        Trainer.evaluate = _wrap_evaluate(Trainer.evaluate)
    if not getattr(Trainer.fit, "__reg4rec_checkpoints__", False):
        Trainer.fit = _wrap_fit(Trainer.fit)
