"""Run one benchmark cell (one model variant, one seed) and measure it.

A cell runs in its own Python process::

    python -m recbole_reg4rec.benchmark.runner REQUEST.json RESULT.json

so its peak memory is its own (``ru_maxrss`` of that process), a crash or a kill loses only
that cell, and RecBole's global state (loggers, seeds, sys.argv parsing) starts clean. The
result is written atomically (:func:`recbole_reg4rec.benchmark.store.write_json_atomic`) only
after the test evaluation finished, so a cell killed mid-way leaves no result and is redone.

The request holds ``model``, ``dataset``, ``config_file_list`` and ``config_dict`` exactly as
given to RecBole's ``Config``, plus the bookkeeping fields copied into the result (``label``,
``seed``, ``cell_id``, ``spec_hash``...), the cell's ``log_file`` and whether RecBole's log also
goes to the console (``console_log``). Measured, in the result:

* ``valid`` / ``test``: best validation metrics, test metrics of the best (early-stopped) model;
* ``epochs_trained``, ``best_epoch``;
* ``train_s_per_epoch``: wall seconds of the training passes (``Trainer._train_epoch``) divided
  by the epochs trained (``epoch_times``: ``[epoch, stage, seconds]`` of each, stage 2 being
  REG4Rec's alignment stage); ``valid_s_total`` the same for validation passes; ``fit_s`` the
  whole ``Trainer.fit``; ``eval_s``: the test evaluation (best-model reload included);
  ``model_init_s``: model construction (REG4Rec's tokenizer included); ``cell_s``: everything;
* ``peak_rss_mb``: peak resident memory of the cell's process; ``cuda_peak_mb``:
  ``torch.cuda.max_memory_allocated`` on a GPU (else ``None``);
* ``device``, ``config_hash`` (of the resolved RecBole config, seed and paths left out), and the
  resolved ``config`` itself;
* with ``eval_steps`` in the request (``--steps``): ``steps_results``, the best model evaluated
  again at each reasoning-steps setting L (``[{"steps", "valid", "test", "eval_s"}]``). L acts at
  inference only, so one trained model serves every L;
* with ``eval_inference`` (``--inference``): ``inference_results``, the best model evaluated again
  under each of those inference settings (``[{"settings", "valid", "test", "eval_s"}]``), e.g.
  ranked by its item-ID head alone; ``inference_settings``: the settings the cell's own row used
  (chosen on validation when ``auto``);
* for two-stage trainers (REG4Rec's alignment stage): ``stage1_results``, the best stage-1 model's
  validation and test metrics under the inference settings chosen for it, measured as the trainer
  switches to stage 2 (report only: the trainer never sees the test numbers), and
  ``stage2_selected``, whether the tested model is a stage-2 one (its checkpoint's epoch is an alignment epoch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

#: Resolved-config keys that do not change what is computed (left out of ``config_hash``).
VOLATILE_KEYS = frozenset(
    {
        "seed", "checkpoint_dir", "show_progress", "state", "log_wandb", "wandb_project", "gpu_id",
        "worker", "device", "local_rank", "nproc", "world_size", "offset", "ip", "port",
        "dataset_save_path", "dataloaders_save_path", "save_dataset", "save_dataloaders", "data_path",
        "run_id",
    }
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_hash(final_config: Dict[str, Any]) -> str:
    """Short hash of a resolved RecBole config, :data:`VOLATILE_KEYS` left out."""
    kept = {k: v for k, v in final_config.items() if k not in VOLATILE_KEYS}
    text = json.dumps(_jsonable(kept), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _EpochMeter:
    """Wraps a trainer's ``_train_epoch`` / ``_valid_epoch`` to count and time them."""

    def __init__(self, trainer) -> None:
        self.train_epochs = 0
        self.train_s = 0.0
        self.valid_passes = 0
        self.valid_s = 0.0
        self.last_epoch = -1
        self.epochs: list = []  # [epoch_idx, stage, seconds] per training pass
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed_train(train_data, epoch_idx, *args, **kwargs):
            start = time.perf_counter()
            try:
                return train_epoch(train_data, epoch_idx, *args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                self.train_s += seconds
                self.train_epochs += 1
                self.last_epoch = epoch_idx
                # two-stage trainers (REG4Rec: supervised, then PARS alignment) expose `stage`
                self.epochs.append([int(epoch_idx), int(getattr(trainer, "stage", 1)), seconds])

        def timed_valid(*args, **kwargs):
            start = time.perf_counter()
            try:
                return valid_epoch(*args, **kwargs)
            finally:
                self.valid_s += time.perf_counter() - start
                self.valid_passes += 1

        trainer._train_epoch = timed_train
        trainer._valid_epoch = timed_valid


class _Stage1Recorder:
    """Wraps a two-stage trainer's ``_switch_to_stage2`` to measure the model it starts from.

    At that moment the weights are stage 1's best and its inference settings the ones chosen for it,
    so ``valid`` is the bar stage 2 must beat and ``test`` what the cell would report without stage 2.
    The random states are restored after the test pass, so stage 2 trains exactly as it would unmeasured.
    """

    def __init__(self, trainer, test_data, show_progress: bool) -> None:
        self.result: Dict[str, Any] = {}
        switch = trainer._switch_to_stage2

        def measured_switch(first_epoch: int, *args, **kwargs):
            self.result = self._measure(trainer, test_data, show_progress, first_epoch)
            return switch(first_epoch, *args, **kwargs)

        trainer._switch_to_stage2 = measured_switch

    @staticmethod
    def _measure(trainer, test_data, show_progress: bool, first_epoch: int) -> Dict[str, Any]:
        from ..compat.checkpoints import restore_rng_state, rng_state

        states = rng_state()  # the ones a checkpoint keeps for an exact resume
        try:
            test = trainer.evaluate(test_data, load_best_model=False, show_progress=show_progress)
        finally:
            restore_rng_state(states)
        return {
            "first_stage2_epoch": int(first_epoch),
            "valid": {k: float(v) for k, v in dict(trainer.best_valid_result or {}).items()},
            "test": {k: float(v) for k, v in dict(test).items()},
        }


def check_reasoning_steps(model, steps) -> None:
    """Before training: every L of ``--steps`` must be a setting this model has (1..M)."""
    if not steps:
        return
    if not hasattr(model, "reasoning_steps") or not hasattr(model, "n_codebooks"):
        raise ValueError(
            f"--steps: {type(model).__name__} has no reasoning_steps setting; name only REG4Rec-family models "
            f"in --steps_models."
        )
    too_many = [L for L in steps if not 1 <= int(L) <= model.n_codebooks]
    if too_many:
        raise ValueError(
            f"--steps: L = {too_many} outside 1..M = {model.n_codebooks} (the number of codebooks of "
            f"{type(model).__name__} on this dataset); ask for --steps=1-{model.n_codebooks} or fewer."
        )


def check_inference_variants(model, variants) -> None:
    """Before training: every ``--inference`` variant must be valid for this model
    (:meth:`REG4Rec.configure_inference` raises one clear line otherwise)."""
    if not variants:
        return
    if not hasattr(model, "configure_inference"):
        raise ValueError(
            f"--inference: {type(model).__name__} has no inference settings; name only REG4Rec-family models in "
            f"--steps_models."
        )
    for settings in variants:
        try:
            previous = model.configure_inference(**settings)
        except ValueError as err:
            raise ValueError(f"--inference {settings}: {err}") from None
        model.configure_inference(**previous)


def evaluate_inference_variants(trainer, model, variants, valid_data, test_data, show_progress=False) -> List[Dict[str, Any]]:
    """The trained (best, already loaded) model evaluated on validation and test under each of
    ``variants`` (dicts of inference settings, applied with ``model.configure_inference`` and
    restored after). Inference settings need no training, so one model serves every variant."""
    logger = logging.getLogger()
    results = []
    for settings in variants:
        previous = model.configure_inference(**settings)
        try:
            valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=show_progress)
            start = time.perf_counter()  # eval_s: the test pass, as for the cell itself
            test = trainer.evaluate(test_data, load_best_model=False, show_progress=show_progress)
        finally:
            model.configure_inference(**previous)
        results.append({"settings": dict(settings), "valid": {k: float(v) for k, v in dict(valid).items()},
                        "test": {k: float(v) for k, v in dict(test).items()}, "eval_s": time.perf_counter() - start})
        logger.info(f"inference {settings}: valid {dict(valid)} test {dict(test)}")
    return results


def evaluate_reasoning_steps(trainer, model, steps, valid_data, test_data, show_progress=False) -> List[Dict[str, Any]]:
    """The trained (best, already loaded) model evaluated on validation and test at each L
    (:func:`evaluate_inference_variants` with ``reasoning_steps = L``)."""
    results = evaluate_inference_variants(
        trainer, model, [{"reasoning_steps": int(L)} for L in steps or []], valid_data, test_data, show_progress
    )
    return [{"steps": r["settings"]["reasoning_steps"], **{k: r[k] for k in ("valid", "test", "eval_s")}} for r in results]


def run_cell(request: Dict[str, Any]) -> Dict[str, Any]:
    """Train, validate and test one cell in this process; return its result record."""
    import torch

    import recbole_reg4rec  # noqa: F401  (compatibility layer + our models)

    from ..compat.checkpoints import load_checkpoint
    from ..run import make_config, prepare_run, seed_everything, start_logging

    started_at = _now()
    cell_start = time.perf_counter()
    config = make_config(request["model"], request["dataset"], request.get("config_file_list"),
                         request.get("config_dict"))
    seed_everything(config)
    logger = start_logging(config, log_file=request.get("log_file"), console=request.get("console_log", True))
    logger.info(f"benchmark cell {request.get('label')} seed {config['seed']}")
    logger.info(config)

    run = prepare_run(config)
    model, trainer = run.model, run.trainer
    train_data, valid_data, test_data = run.train_data, run.valid_data, run.test_data
    model_init_s = run.model_init_s
    check_reasoning_steps(model, request.get("eval_steps") or [])
    check_inference_variants(model, request.get("eval_inference") or [])
    meter = _EpochMeter(trainer)
    stage1 = _Stage1Recorder(trainer, test_data, config["show_progress"]) if hasattr(trainer, "_switch_to_stage2") else None
    on_cuda = torch.cuda.is_available() and str(config["device"]).startswith("cuda")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()

    fit_start = time.perf_counter()
    best_valid_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=config["show_progress"])
    fit_s = time.perf_counter() - fit_start
    eval_start = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    eval_s = time.perf_counter() - eval_start
    logger.info(f"best valid: {dict(best_valid or {})}")
    logger.info(f"test result: {dict(test)}")

    steps_results = evaluate_reasoning_steps(
        trainer, model, request.get("eval_steps") or [], valid_data, test_data, config["show_progress"]
    )
    inference_results = evaluate_inference_variants(
        trainer, model, request.get("eval_inference") or [], valid_data, test_data, config["show_progress"]
    )

    epochs = max(meter.train_epochs, 1)
    best_epoch = None
    checkpoint = getattr(trainer, "saved_model_file", None)
    if checkpoint and os.path.exists(checkpoint):  # the tested model's epoch, as saved
        best_epoch = int(load_checkpoint(checkpoint, map_location="cpu")["epoch"])
    elif meter.valid_passes and config["eval_step"] > 0:
        # (patience restarts in REG4Rec's stage 2, so this only holds for one-stage training)
        best_epoch = meter.last_epoch - trainer.cur_step * config["eval_step"]
    if checkpoint and not request.get("keep_checkpoint", False) and os.path.exists(checkpoint):
        os.remove(checkpoint)
        checkpoint = None

    final_config = _jsonable(dict(config.final_config_dict))
    return {
        **{k: request.get(k) for k in ("cell_id", "label", "model", "kind", "seed", "variant",
                                       "dataset", "profile", "spec_hash", "defaults_hash")},
        "status": "ok",
        "run_id": uuid.uuid4().hex,
        "started_at": started_at,
        "finished_at": _now(),
        "device": str(config["device"]),
        "config_hash": config_hash(final_config),
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "epochs_trained": meter.train_epochs,
        "best_epoch": best_epoch,
        "cell_s": time.perf_counter() - cell_start,
        "model_init_s": model_init_s,
        "fit_s": fit_s,
        "train_s_total": meter.train_s,
        "train_s_per_epoch": meter.train_s / epochs,
        "valid_s_total": meter.valid_s,
        "epoch_times": meter.epochs,
        "eval_s": eval_s,
        "peak_rss_mb": _peak_rss_mb(),
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
        "best_valid_score": float(best_valid_score),
        "valid": {k: float(v) for k, v in dict(best_valid or {}).items()},
        "test": {k: float(v) for k, v in dict(test).items()},
        "checkpoint": checkpoint,
        **({"steps_results": steps_results} if steps_results else {}),
        **({"inference_results": inference_results} if inference_results else {}),
        **({"inference_settings": model.inference_settings()} if hasattr(model, "inference_settings") else {}),
        **({"stage1_results": stage1.result,
            # the tested model is stage 2's when its checkpoint's epoch is an alignment epoch
            "stage2_selected": best_epoch is not None and best_epoch >= stage1.result["first_stage2_epoch"]}
           if stage1 and stage1.result else {}),
        "config": final_config,
    }


def main(argv=None) -> int:
    from .store import write_json_atomic

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m recbole_reg4rec.benchmark.runner REQUEST.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        request = json.load(f)
    record = run_cell(request)
    write_json_atomic(Path(argv[1]), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
