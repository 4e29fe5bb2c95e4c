"""The Ray Tune trainable: one RecBole training run per trial.

It lives in an importable module so that Ray workers import :mod:`recbole_reg4rec` (which
registers our models) before they unpickle it. Each trial

* builds a RecBole ``Config`` from the sweep's fixed settings plus the trial's sampled
  parameters (no ``sys.argv`` parsing: Ray workers' own flags are not config overrides);
* trains with ``Trainer.fit(callback_fn=...)`` and reports the **validation** metric after
  every evaluation, so a scheduler such as ASHA can stop a bad trial early;
* finally evaluates the best checkpoint on the test split and reports the best validation
  result with the test metrics as extra ``test_*`` fields.

Every path a trial writes is its own: it works in its trial folder (``./log``,
``./log_tensorboard`` and ``checkpoint_dir = <trial folder>/saved``) and runs under its trial id
as ``run_id``, which names its checkpoints and enters its log file's name, so trials started in
the same second never share a file even if they shared a folder.

Report keys: ``valid_score`` (the config's ``valid_metric``, used for selection), ``epoch``,
``valid_<metric>`` for each validation metric, and in the last report ``test_<metric>`` and
``completed = 1``.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import recbole_reg4rec  # noqa: F401  (compat layer + model registration in Ray workers)
from recbole_reg4rec.run import make_config, prepare_run, seed_everything, start_logging
from recbole_reg4rec.tuning.ray_compat import report, trial_dir, trial_id

#: metric key Ray Tune selects on
SCORE_KEY = "valid_score"
#: marks the final report of a trial that finished training and testing
COMPLETED_KEY = "completed"


@dataclass
class TrialSetup:
    """Settings shared by every trial of a sweep (all paths absolute)."""

    model: str
    dataset: str
    config_files: List[str] = field(default_factory=list)
    config_dict: Dict[str, Any] = field(default_factory=dict)
    use_gpu: bool = False
    cpus: float = 1


def _device_settings(use_gpu: bool) -> Dict[str, Any]:
    """``gpu_id`` for the trial. RecBole's Config writes ``gpu_id`` into CUDA_VISIBLE_DEVICES,
    which would undo Ray's GPU assignment; hand it back Ray's own choice (or none)."""
    if not use_gpu:
        return {"gpu_id": ""}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return {"gpu_id": visible if visible else "0"}


def _prefixed(prefix: str, result: Optional[Dict[str, Any]]) -> Dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in (result or {}).items()}


def build_trial_config(
    setup: TrialSetup, params: Dict[str, Any], workdir: str, run_id: Optional[str] = None
) -> Dict[str, Any]:
    """``config_dict`` of one trial: fixed settings < sampled parameters < per-trial paths and run id."""
    config_dict = {"show_progress": False}
    config_dict.update(setup.config_dict)
    config_dict.update(params)
    config_dict["checkpoint_dir"] = os.path.join(workdir, "saved")
    if run_id:
        # RecBole reads config_dict strings as Python literals: a trial id such as '50870_00000'
        # would become the number 5087000000; its repr reads back as the same string
        config_dict["run_id"] = repr(str(run_id))
    config_dict.update(_device_settings(setup.use_gpu))
    return config_dict


def recbole_trainable(params: Dict[str, Any], setup: TrialSetup) -> None:
    """Ray Tune function trainable (bind ``setup`` with ``tune.with_parameters``)."""
    import torch

    torch.set_num_threads(max(1, int(setup.cpus)))
    workdir = trial_dir()
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)  # RecBole writes ./log and ./log_tensorboard: keep them with the trial
    # make_config ignores sys.argv: the Ray worker's own flags are not config overrides
    config = make_config(setup.model, setup.dataset, setup.config_files,
                         build_trial_config(setup, params, workdir, trial_id()))
    seed_everything(config)
    start_logging(config, console=False)  # the log file in the trial folder is enough
    run = prepare_run(config)
    trainer = run.trainer
    train_data, valid_data, test_data = run.train_data, run.valid_data, run.test_data

    last = {"valid_result": None, "epoch": 0}
    valid_epoch = trainer._valid_epoch

    def _valid_epoch_capturing(*args, **kwargs):  # keeps every metric, not only the score
        score, result = valid_epoch(*args, **kwargs)
        last["valid_result"] = result
        return score, result

    trainer._valid_epoch = _valid_epoch_capturing

    def on_valid(epoch_idx: int, valid_score: float) -> None:
        last["epoch"] = epoch_idx + 1
        report({SCORE_KEY: float(valid_score), "epoch": epoch_idx + 1, **_prefixed("valid_", last["valid_result"])})

    fit_kwargs = dict(saved=True, show_progress=config["show_progress"])
    if "callback_fn" in inspect.signature(trainer.fit).parameters:
        fit_kwargs["callback_fn"] = on_valid
    else:
        logging.getLogger().warning(
            "%s.fit takes no callback_fn: this trial reports once, at the end (no early stopping).",
            type(trainer).__name__,
        )
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, **fit_kwargs)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    report(
        {
            SCORE_KEY: float(best_valid_score),
            "epoch": last["epoch"] or config["epochs"],
            **_prefixed("valid_", best_valid_result),
            **_prefixed("test_", test_result),
            COMPLETED_KEY: 1,
        }
    )
