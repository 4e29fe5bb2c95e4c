"""Patches for defects of RecBole 1.2.1 on today's stack (numpy 2, pandas 3, torch >= 2.6).

Every patch is one row of :data:`PATCHES` (target in RecBole, defect, our fix), the one list of
them; the table is appended to this docstring below. They are applied once by
``import recbole_reg4rec``, through one helper, :func:`apply`, which installs the rows in order. That order is also the nesting where two fixes wrap the
same method: ``Trainer.__init__`` / ``fit`` / ``evaluate`` are wrapped by :mod:`.checkpoints` first
(inside), then by :mod:`.distributed` (outside), whatever the import order of the modules.
Only RecBole defects live here; version differences of Ray are in
:mod:`recbole_reg4rec.tuning.ray_compat` (they patch nothing).

Both config fixes run through one hook in ``Config`` (:mod:`.config_hooks`). No file in
site-packages is edited, no process-wide environment variable is set and pandas / numpy
behaviour is not changed beyond the aliases.
"""

import warnings
from typing import NamedTuple

from . import (
    anomaly_detection,
    atomic_files,
    checkpoints,
    config_checks,
    data_checks,
    distributed,
    loss_defaults,
    numpy_aliases,
    safe_pickles,
    tensorboard_dirs,
)


class Patch(NamedTuple):
    """One row of the table above."""

    target: str
    defect: str
    fix: object  # the module whose ``install()`` applies it


#: Every patch, in the order :func:`apply` installs them.
PATCHES = (
    Patch("np.float ... (read by Config.compatibility_settings)", "removed in numpy >= 1.24 / 2", numpy_aliases),
    Patch("Dataset._load_feat / _fill_nan", "pandas 3: NaN cells stay NaN, agg(len) changed; bad rows crash far "
          "from the cause", atomic_files),
    Patch("Dataset._data_filtering", "drops single-interaction users and unknown items silently", data_checks),
    Patch("Config._set_default_parameters", "values of the wrong type accepted, failing late", config_checks),
    Patch("Config._set_default_parameters", "CE loss with the default negative sampling refused out of the box",
          loss_defaults),
    Patch("Trainer.__init__ / _save_checkpoint / resume_checkpoint / fit / evaluate", "pickled Config (no "
          "weights_only load), no RNG state, no per-epoch resume point, one checkpoint name per second", checkpoints),
    Patch("recbole.data.utils.pickle", "unpickles any dataset / dataloader file planted under saved/", safe_pickles),
    Patch("Config._init_device, AbstractTrainer.__init__, Trainer.__init__ / fit / evaluate, ensure_dir",
          "DDP assumes CUDA (nccl); ranks race on checkpoint names and folders", distributed),
    Patch("sequential_recommender/sine.py (imported by get_model)", "turns autograd anomaly detection on for the "
          "whole process: every backward 2-2.5 x slower", anomaly_detection),
    Patch("recbole.utils.utils.SummaryWriter (used by get_tensorboard)", "writer on a relative folder, never closed: "
          "after a change of directory its thread writes elsewhere or fails", tensorboard_dirs),
)


def patch_table() -> str:
    """:data:`PATCHES` as a markdown table."""
    rows = [f"| {p.target} | {p.defect} | ``{p.fix.__name__.rsplit('.', 1)[-1]}`` |" for p in PATCHES]
    return "\n".join(["| target in RecBole | defect | our fix |", "|---|---|---|", *rows])


if __doc__:  # absent under python -OO
    __doc__ += "\n" + patch_table() + "\n"

_APPLIED = False


def apply() -> None:
    """Install every patch of :data:`PATCHES`, in order (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    for patch in PATCHES:
        patch.fix.install()
    _silence_recbole_warnings()
    _APPLIED = True


def _silence_recbole_warnings() -> None:
    """Warnings that RecBole's own code triggers on today's stack, harmless there and not the
    user's to fix: hidden for RecBole's modules only (the same warnings from other code still show)."""
    # torch.cuda.amp.GradScaler(...), deprecated in torch 2.4, built by every recbole.trainer.Trainer
    warnings.filterwarnings("ignore", message=r"`torch\.cuda\.amp\.GradScaler", category=FutureWarning,
                            module=r"recbole\.")
    # recbole's dataset turns read-only numpy arrays into tensors that it never writes to
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning,
                            module=r"recbole\.")
    # pandas >= 3.1 warns on every inplace=True RecBole uses (still correct for whole frames)
    try:
        from pandas.errors import Pandas4Warning
    except ImportError:  # pandas < 3.1
        return
    warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"recbole\.")
