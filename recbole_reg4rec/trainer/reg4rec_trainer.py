"""REG4RecTrainer: supervised stage 1, then the PARS alignment stage, in one ``fit``.

Stage 1 is RecBole's own training loop (early stopping on the validation metric). Stage 2
starts from the best stage-1 model, freezes a copy of it as the reference policy and runs
GRPO epochs (:mod:`recbole_reg4rec.alignment.pars`: each batch of sampled paths serves
``pars_inner_steps`` clipped updates) through the same loop, so validation,
early stopping, checkpoints and the final best-model reload work as usual: stage 2 only
replaces the saved model when it beats the best validation score so far. Each alignment epoch
is RecBole's own ``Trainer._train_epoch`` with the PARS loss as its ``loss_func``
(:mod:`recbole_reg4rec.alignment.epoch`), so mixed precision, gradient clipping and, under DDP,
the averaging of gradients across processes are RecBole's, as in stage 1.

Checkpoints record the stage (and, in stage 2, the reference weights), so
``trainer.resume_checkpoint(file)`` followed by ``fit`` continues the stage it was in.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from typing import Dict, Optional

from recbole.trainer import Trainer
from recbole.utils import get_gpu_usage, set_color
from tqdm import tqdm

from ..alignment import attach_future_items
from ..alignment.epoch import AlignmentEpoch
from ..alignment.pars import AlignmentSettings
from ..compat.checkpoints import load_checkpoint, save_checkpoint
from ..compat.distributed import wait_for_every_rank
from .inference_selection import select_inference_settings
from .per_user_metric import PerUserEvaluator
from .progress import StageProgressMixin


#: ``pars_train_scope``: what stage 2 trains — every parameter, or the generator only (the encoder and the
#: item table the ID head reads keep their stage-1 weights; :meth:`REG4Rec.generator_parameters`)
TRAIN_SCOPES = ("all", "generator")

#: How far stage 2's bar sits above stage 1's best validation score. RecBole's early stopping keeps the later
#: model on a tie (``value >= best``), and validation metrics are rounded to 4 decimals, so without it a stage-2
#: epoch that only ties stage 1 would replace the stage-1 model; far below the rounding, it changes nothing else.
STAGE2_TIE_MARGIN = 1e-9


class REG4RecTrainer(StageProgressMixin, Trainer):
    """Trainer of REG4Rec and its ablations (found by RecBole's ``get_trainer``)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.evaluator = PerUserEvaluator(config, self.valid_metric)  # RecBole's, plus per-user values
        self.stage = 1
        self.pars_enabled = bool(config["pars_enabled"])
        self.stage2_epochs = int(config["pars_epochs"])
        self.pars_learning_rate = float(config["pars_learning_rate"])
        self.pars_settings: Optional[AlignmentSettings] = (
            AlignmentSettings.from_config(config) if self.pars_enabled else None
        )
        steering = self.pars_settings.rollout_steering if self.pars_settings is not None else 0.0
        if steering > 0 and not getattr(model, "item_head_enabled", False):
            raise ValueError(
                f"pars_rollout_steering={self.pars_settings.rollout_steering} steers rollouts by the item-ID head, "
                f"but this model has none (item_fusion_weight: 0): set pars_rollout_steering: 0."
            )
        self.stage1_checkpoint = config["stage1_checkpoint"]
        self.pars_train_scope = config["pars_train_scope"] or "all"
        if self.pars_train_scope not in TRAIN_SCOPES:
            raise ValueError(f"pars_train_scope={self.pars_train_scope!r} is unknown: use one of {', '.join(TRAIN_SCOPES)}")
        if self.pars_enabled and self.pars_train_scope != "all" and not config["single_spec"]:
            raise ValueError("pars_train_scope: generator is not supported with DDP (every parameter must get a "
                             "gradient on every process): use pars_train_scope: all, or train on one process")
        self.stage2_end_epoch: Optional[int] = None
        #: stage 1's best validation score under the chosen settings (the bar stage 2 must beat); kept in
        #: stage-2 checkpoints, so a resumed run still knows whether stage 2 replaced the model
        self.stage1_score: Optional[float] = None
        self.reference = None
        self._last_epoch_idx = -1
        self._future_attached = False

    # ---- checkpoint state (see compat.checkpoints) ------------------------------------------
    def extra_checkpoint_state(self) -> Dict:
        state = {"stage": self.stage, "stage2_end_epoch": self.stage2_end_epoch}
        if self.stage == 2:
            state["reference_state_dict"] = self.reference.state_dict()
            state["stage1_score"] = None if self.stage1_score is None else float(self.stage1_score)  # weights-only safe
        return state

    def restore_extra_checkpoint_state(self, extra: Dict) -> None:
        self.stage = int(extra.get("stage", 1))
        if self.stage == 2:
            self.stage2_end_epoch = int(extra["stage2_end_epoch"])
            self.reference = self._frozen_copy()
            self.reference.load_state_dict(extra["reference_state_dict"])
            self.stage1_score = extra.get("stage1_score")  # None in checkpoints of older versions
            self._limit_training_to_scope(True)
            self.logger.info(set_color("Resuming the alignment stage (stage 2)", "pink"))

    # ---- the two stages ---------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if self.stage == 2:  # resumed from a stage-2 checkpoint
            self.epochs = self.stage2_end_epoch
        elif self.pars_enabled and self.stage1_checkpoint:
            checkpoint = load_checkpoint(self.stage1_checkpoint, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.best_valid_score = checkpoint["best_valid_score"]
            self.logger.info(f"Stage 1 taken from {self.stage1_checkpoint} (epoch {checkpoint['epoch']})")
            if saved:  # the run's best model until stage 2 beats it (the final test loads this file)
                self._save_checkpoint(int(checkpoint["epoch"]), verbose=verbose)
            self.choose_auto_inference(valid_data, saved)
            self._rescore_stage1(valid_data)
            self._switch_to_stage2(first_epoch=int(checkpoint["epoch"]) + 1)
        else:
            if self.pars_enabled and self.epochs <= 0:
                raise ValueError(
                    "the alignment stage needs a stage-1 model to start from, but epochs = 0 and no "
                    "stage1_checkpoint is set. Train stage 1 (epochs > 0) or set stage1_checkpoint to a "
                    "REG4Rec checkpoint file."
                )
            if verbose:
                self.start_stage("Stage 1", "supervised training", self.start_epoch, self.epochs, self.stopping_step)
            self._check_auto_needs_validation(valid_data)
            super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
            # stage 1 validated on the provisional settings (the ID head alone by default); the settings are
            # chosen for its best model, and stage 2, which trains the reasoning paths, validates under them
            self.choose_auto_inference(valid_data, saved)
            if not self.pars_enabled or self.stage2_epochs <= 0:
                # the validation result reported is that of the settings the model now ranks (and tests) with
                self._rescore_stage1(valid_data, bar=False)
                return self.best_valid_score, self.best_valid_result
            if saved:  # start from the best stage-1 model, not the last
                checkpoint = load_checkpoint(self.saved_model_file, map_location=self.device)
                self.model.load_state_dict(checkpoint["state_dict"])
                self.model.load_other_parameter(checkpoint.get("other_parameter"))
            else:
                self.logger.warning("saved=False: stage 2 starts from the last stage-1 weights, not the best")
            self._rescore_stage1(valid_data)
            self._switch_to_stage2(first_epoch=self._last_epoch_idx + 1)
        if verbose:
            self.start_stage("Stage 2", "preference alignment (PARS)", self.start_epoch, self.epochs, self.stopping_step)
        if not self._future_attached and self.pars_settings.msra_horizon > 0:
            attach_future_items(train_data._dataset, self.pars_settings.msra_horizon)
            self._future_attached = True
        self._check_auto_needs_validation(valid_data)
        if self.stage1_score is None:  # resumed from a stage-2 checkpoint of an older version
            self.stage1_score = self.best_valid_score
        try:
            super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        finally:
            self._limit_training_to_scope(False)  # the model leaves fit() with every parameter trainable
        if abs(self.best_valid_score - self.stage1_score) <= STAGE2_TIE_MARGIN:  # stage 2 never beat the bar
            self.best_valid_score = self.stage1_score
        if self.best_valid_score != self.stage1_score:  # stage 2 replaced the model: choose for its weights
            self.choose_auto_inference(valid_data, saved)
        return self.best_valid_score, self.best_valid_result

    def _rescore_stage1(self, valid_data, bar: bool = True) -> None:
        """Stage 1's best validation score under the chosen settings (they may differ from the
        provisional ones stage 1 was validated with): the bar stage 2 must beat, or (``bar=False``,
        no stage 2) the validation result reported beside the test result of the same settings."""
        if not valid_data or not self._auto_settings():
            return
        result = self.evaluate(valid_data, load_best_model=False, show_progress=False)
        self.best_valid_score, self.best_valid_result = result[self.valid_metric.lower()], result
        self.logger.info(f"Stage 1's best model under the chosen settings: valid {self.valid_metric} "
                         f"{self.best_valid_score:.4f}" + (" (the score stage 2 must beat)" if bar else ""))

    # ---- inference settings chosen on validation ----------------------------------------------
    def _auto_settings(self):
        return tuple(getattr(self._plain_model(), "auto_inference", ()))

    def _plain_model(self):
        return getattr(self.model, "module", self.model)  # DDP wraps the model

    def _check_auto_needs_validation(self, valid_data) -> None:
        """A config without a validation split is refused when the model is built; a ``fit``
        called without validation data keeps the provisional values, and says so."""
        if self._auto_settings() and not valid_data:
            model = self._plain_model()
            self.logger.warning(
                f"fit() got no validation data: {', '.join(f'{k}=auto' for k in self._auto_settings())} keep "
                f"their provisional values {({k: getattr(model, k) for k in self._auto_settings()})}; pass "
                f"valid_data to choose them, or set them to values."
            )

    def choose_auto_inference(self, valid_data, saved: bool = True) -> dict:
        """Choose the model's ``auto`` inference settings on ``valid_data`` for the best model
        (:mod:`.inference_selection`), apply them, log them and store them in the best-model
        checkpoint (``other_parameter``), so the test evaluation and ``load_data_and_model`` use them.
        The model keeps its last weights afterwards (RecBole's ``fit`` convention)."""
        model = self._plain_model()
        if not self._auto_settings() or not valid_data:
            return {}
        checkpoint = last_weights = None
        if saved:  # under DDP rank 0 alone writes the best checkpoint (it may just have done so, e.g. for a
            # stage1_checkpoint): every rank reads it once written, and all take the branch below (with its barrier)
            wait_for_every_rank(self.config)
        if saved and os.path.isfile(self.saved_model_file):  # choose for the best model, as it will be tested
            checkpoint = load_checkpoint(self.saved_model_file, map_location=self.device)
            last_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
        chosen, trials = select_inference_settings(model, functools.partial(self.validation_values, valid_data),
                                                   self.logger)
        metric = self.valid_metric.lower()
        if trials:
            best = max(score for _, score in trials)
            self.logger.info(set_color("Inference settings chosen on validation", "pink")
                             + f": {chosen} (valid {metric} {best:.4f}, {len(trials)} settings tried)")
        else:  # e.g. only reasoning knobs are auto and the ID head alone ranks: none of them acts
            self.logger.info(set_color("Inference settings", "pink") + f": nothing to choose on validation, "
                             f"score_mode={model.score_mode} reads none of the auto settings; kept {chosen}")
        self.chosen_inference = {"settings": chosen, "trials": trials}
        if checkpoint is not None:
            if self.config["single_spec"] or self.config["local_rank"] == 0:
                checkpoint["other_parameter"] = self.model.other_parameter()
                save_checkpoint(checkpoint, self.saved_model_file)
            # every rank reads this file next (stage 2 starts from it, with its settings): a rank that went on
            # before rank 0 wrote them would run stage 2 with the provisional settings (validating every epoch
            # under other settings than rank 0; a run resumed in stage 2 reads the chosen ones on every rank)
            wait_for_every_rank(self.config)
            self.model.load_state_dict(last_weights)  # after fit the model holds its last weights, as in RecBole
        return chosen

    def validation_values(self, valid_data):
        """The model's validation score as configured: per-user values ``[users]`` of ``valid_metric``
        (a top-k metric on one process), else RecBole's mean (other metrics; DDP, where each process
        sees only its users)."""
        self.evaluator.last_per_user = None
        result = self.evaluate(valid_data, load_best_model=False, show_progress=False)
        per_user = getattr(self.evaluator, "last_per_user", None)
        if per_user is not None and self.config["single_spec"]:
            return per_user
        return float(result[self.valid_metric.lower()])

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's evaluation, then a log line on how CRSS orders differ across the users."""
        model = self._plain_model()
        if hasattr(model, "first_codebook_report"):
            model.first_codebook_report(reset=True)
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if hasattr(model, "first_codebook_report"):
            report = model.first_codebook_report(reset=True)
            if report["users"]:
                self.last_first_codebook_report = report
                self.logger.info(
                    f"CRSS first codebook of the best path: users per codebook {report['counts']}, "
                    f"{100 * report['share_differs_from_most_common']:.1f} % differ from the most common one"
                )
        return result

    def _frozen_copy(self):
        reference = copy.deepcopy(self.model)
        reference.eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def _switch_to_stage2(self, first_epoch: int) -> None:
        """The current weights become both the starting policy and the frozen reference; epoch
        numbers continue after stage 1's, with their own budget and early-stopping patience."""
        self.stage = 2
        self.reference = self._frozen_copy()
        self.start_epoch = first_epoch
        self.epochs = self.stage2_end_epoch = first_epoch + self.stage2_epochs
        self.cur_step = 0  # patience restarts; stage 2 must beat stage 1's best score, a tie keeps stage 1
        self.stage1_score = self.best_valid_score
        self.best_valid_score = self.stage1_score + (STAGE2_TIE_MARGIN if self.valid_metric_bigger else -STAGE2_TIE_MARGIN)
        self.optimizer = self._build_optimizer(params=self.model.parameters(), learning_rate=self.pars_learning_rate)
        self._limit_training_to_scope(True)

    def _limit_training_to_scope(self, on: bool) -> None:
        """With ``pars_train_scope: generator``, only the generator's parameters get gradients in stage 2
        (the optimizer keeps every parameter, so checkpoints and resuming are unchanged; parameters
        without a gradient are not updated, and gradient clipping sees the generator's only)."""
        if self.pars_train_scope == "all":
            return
        model = self._plain_model()
        trained = {id(p) for p in model.generator_parameters()}
        for p in model.parameters():
            p.requires_grad_(not on or id(p) in trained)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._last_epoch_idx = epoch_idx
        if self.stage == 1:
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        return self._alignment_epoch(train_data, epoch_idx, show_progress)

    def _alignment_epoch(self, train_data, epoch_idx: int, show_progress: bool) -> float:
        """One GRPO epoch over the training contexts, trained by RecBole's own ``_train_epoch``
        (:class:`~recbole_reg4rec.alignment.epoch.AlignmentEpoch`: ``pars_inner_steps`` visits per
        batch of sampled paths, one optimizer update each). Logs reward components, KL, clip
        fraction, mean |ratio - 1| and reflection accuracy (log line + tensorboard); returns the
        mean loss of the epoch's updates."""
        bar = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Align {epoch_idx:>5}", "pink"))
            if show_progress else None
        )
        epoch = AlignmentEpoch(
            self.model, self.reference, self.pars_settings, train_data,
            batches=bar, on_batch_end=None if bar is None else functools.partial(self._show_alignment_progress, bar),
        )
        with _sampling_policy_mode(self.model):
            total_loss = super()._train_epoch(epoch, epoch_idx, loss_func=epoch.loss, show_progress=False)
        stats = epoch.statistics()
        for name, value in stats.items():
            self.tensorboard.add_scalar(f"Alignment/{name}", value, epoch_idx)
        self.logger.info(
            set_color(f"epoch {epoch_idx} alignment", "pink") + ": "
            + ", ".join(f"{k}={v:.4f}" for k, v in stats.items())
        )
        self.last_alignment_stats = stats
        return (total_loss or 0.0) / max(epoch.n_updates, 1)  # RecBole sums the updates' losses

    def _show_alignment_progress(self, bar, epoch: AlignmentEpoch) -> None:
        bar.set_postfix(reward=f"{epoch.mean_reward:.3f}", kl=f"{epoch.mean_kl:.4f}")
        if self.gpu_available:
            bar.set_postfix_str(set_color("GPU RAM: " + get_gpu_usage(self.device), "yellow"))


@contextlib.contextmanager
def _sampling_policy_mode(model):
    """Keep ``model`` in eval mode through RecBole's epoch loop, which starts with ``model.train()``.

    An alignment epoch samples paths with the weights it then updates, so dropout stays off (the
    sampling policy and the updated policy must be one function); and it is no supervised epoch,
    so a model that counts its ``train()`` calls (REG4Rec's CRSS warm-up) must not count it.
    """
    model.eval()
    model.train = lambda mode=True: model  # an instance attribute: shadows the class's train() until restored
    try:
        yield
    finally:
        del model.train
