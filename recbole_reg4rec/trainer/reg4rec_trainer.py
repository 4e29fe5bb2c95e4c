"""REG4RecTrainer: supervised stage 1, then the PARS alignment stage, in one ``fit``.

Stage 1 is RecBole's own training loop (early stopping on the validation metric). Stage 2
starts from the best stage-1 model, freezes a copy of it as the reference policy and runs
GRPO epochs (:mod:`recbole_reg4rec.alignment.pars`: each batch of sampled paths serves
``pars_inner_steps`` clipped updates) through the same loop, so validation,
early stopping, checkpoints and the final best-model reload work as usual: stage 2 only
replaces the saved model when it beats the best validation score so far.

Checkpoints record the stage (and, in stage 2, the reference weights), so
``trainer.resume_checkpoint(file)`` followed by ``fit`` continues the stage it was in.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from typing import Dict, Optional

import torch
from recbole.trainer import Trainer
from recbole.utils import get_gpu_usage, set_color
from tqdm import tqdm

from ..alignment import attach_future_items
from ..compat.checkpoints import load_checkpoint, save_checkpoint
from ..alignment.pars import AlignmentSettings, batch_loss, sample_batch
from .inference_selection import select_inference_settings
from .progress import StageProgressMixin


class REG4RecTrainer(StageProgressMixin, Trainer):
    """Trainer of REG4Rec and its ablations (found by RecBole's ``get_trainer``)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.stage = 1
        self.pars_enabled = bool(config["pars_enabled"])
        self.stage2_epochs = int(config["pars_epochs"])
        self.pars_learning_rate = float(config["pars_learning_rate"])
        self.pars_settings: Optional[AlignmentSettings] = (
            AlignmentSettings.from_config(config) if self.pars_enabled else None
        )
        self.stage1_checkpoint = config["stage1_checkpoint"]
        self.stage2_end_epoch: Optional[int] = None
        self.reference = None
        self._last_epoch_idx = -1
        self._future_attached = False

    # ---- checkpoint state (see compat.checkpoints) ------------------------------------------
    def extra_checkpoint_state(self) -> Dict:
        state = {"stage": self.stage, "stage2_end_epoch": self.stage2_end_epoch}
        if self.stage == 2:
            state["reference_state_dict"] = self.reference.state_dict()
        return state

    def restore_extra_checkpoint_state(self, extra: Dict) -> None:
        self.stage = int(extra.get("stage", 1))
        if self.stage == 2:
            self.stage2_end_epoch = int(extra["stage2_end_epoch"])
            self.reference = self._frozen_copy()
            self.reference.load_state_dict(extra["reference_state_dict"])
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
            if not self.pars_enabled or self.stage2_epochs <= 0:
                self.choose_auto_inference(valid_data, saved)
                return self.best_valid_score, self.best_valid_result
            if saved:  # start from the best stage-1 model, not the last
                checkpoint = load_checkpoint(self.saved_model_file, map_location=self.device)
                self.model.load_state_dict(checkpoint["state_dict"])
                self.model.load_other_parameter(checkpoint.get("other_parameter"))
            else:
                self.logger.warning("saved=False: stage 2 starts from the last stage-1 weights, not the best")
            self._switch_to_stage2(first_epoch=self._last_epoch_idx + 1)
        if verbose:
            self.start_stage("Stage 2", "preference alignment (PARS)", self.start_epoch, self.epochs, self.stopping_step)
        if not self._future_attached and self.pars_settings.msra_horizon > 0:
            attach_future_items(train_data._dataset, self.pars_settings.msra_horizon)
            self._future_attached = True
        self._check_auto_needs_validation(valid_data)
        super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        self.choose_auto_inference(valid_data, saved)
        return self.best_valid_score, self.best_valid_result

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
        if saved and os.path.isfile(self.saved_model_file):  # choose for the best model, as it will be tested
            checkpoint = load_checkpoint(self.saved_model_file, map_location=self.device)
            last_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
        metric = self.valid_metric.lower()

        def validation_score() -> float:
            return float(self.evaluate(valid_data, load_best_model=False, show_progress=False)[metric])

        chosen, trials = select_inference_settings(model, validation_score, self.logger)
        best = max(score for _, score in trials)
        self.logger.info(set_color("Inference settings chosen on validation", "pink")
                         + f": {chosen} (valid {metric} {best:.4f}, {len(trials)} settings tried)")
        self.chosen_inference = {"settings": chosen, "trials": trials}
        if checkpoint is not None:
            if self.config["single_spec"] or self.config["local_rank"] == 0:
                checkpoint["other_parameter"] = self.model.other_parameter()
                save_checkpoint(checkpoint, self.saved_model_file)
            self.model.load_state_dict(last_weights)  # after fit the model holds its last weights, as in RecBole
        return chosen

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
        self.cur_step = 0  # patience restarts; best_valid_score is kept, so stage 2 must beat stage 1
        self.optimizer = self._build_optimizer(params=self.model.parameters(), learning_rate=self.pars_learning_rate)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._last_epoch_idx = epoch_idx
        if self.stage == 1:
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        return self._alignment_epoch(train_data, epoch_idx, show_progress)

    def _alignment_epoch(self, train_data, epoch_idx: int, show_progress: bool) -> float:
        """One GRPO epoch over the training contexts (``pars_inner_steps`` updates per batch of
        sampled paths); logs reward components, KL, clip fraction, mean |ratio - 1| and
        reflection accuracy (log line + tensorboard)."""
        # dropout off: the sampling policy and the policy being updated must be the same function
        self.model.eval()
        sums: Dict[str, float] = defaultdict(float)
        squares: Dict[str, float] = defaultdict(float)
        n_batches, n_paths, total_loss = 0, 0, 0.0
        batches = (
            tqdm(train_data, total=len(train_data), ncols=100,
                 desc=set_color(f"Align {epoch_idx:>5}", "pink"))
            if show_progress else train_data
        )
        # mixed precision exactly as RecBole's own epochs: autocast by enable_amp, loss scaling on CUDA
        scaler = torch.amp.GradScaler("cuda", enabled=self.enable_scaler)
        n_updates = 0
        for interaction in batches:
            interaction = interaction.to(self.device)
            with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                batch = sample_batch(self.model, self.reference, interaction, self.pars_settings)
            # several clipped updates on the paths the behaviour policy (the weights before them) sampled
            for _ in range(self.pars_settings.inner_steps):
                self.optimizer.zero_grad()
                with torch.autocast(device_type=self.device.type, enabled=self.enable_amp):
                    out = batch_loss(self.model, batch, self.pars_settings)
                loss = out["loss"]
                self._check_nan(loss)
                scaler.scale(loss).backward()
                if self.clip_grad_norm:
                    scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
                scaler.step(self.optimizer)
                scaler.update()
                total_loss += float(loss.detach())
                n_updates += 1
                for name in ("kl", "clip_fraction", "ratio_deviation", "reflection_accuracy", "reflection_bce"):
                    sums[name] += float(out[name])
            n_batches += 1
            for name in ("hit", "step", "reflect", "total"):
                values = out[name].float()
                sums[name] += float(values.sum())
                squares[name] += float((values**2).sum())
            n_paths += out["total"].numel()
            if show_progress:
                batches.set_postfix(reward=f"{sums['total'] / n_paths:.3f}", kl=f"{sums['kl'] / n_updates:.4f}")
                if self.gpu_available:
                    batches.set_postfix_str(set_color("GPU RAM: " + get_gpu_usage(self.device), "yellow"))
        stats = {}
        for name in ("hit", "step", "reflect", "total"):
            mean = sums[name] / max(n_paths, 1)
            stats[f"reward_{name}_mean"] = mean
            stats[f"reward_{name}_std"] = max(squares[name] / max(n_paths, 1) - mean**2, 0.0) ** 0.5
        for name in ("kl", "clip_fraction", "ratio_deviation", "reflection_accuracy", "reflection_bce"):
            stats[name] = sums[name] / max(n_updates, 1)  # mean over the epoch's updates
        for name, value in stats.items():
            self.tensorboard.add_scalar(f"Alignment/{name}", value, epoch_idx)
        self.logger.info(
            set_color(f"epoch {epoch_idx} alignment", "pink") + ": "
            + ", ".join(f"{k}={v:.4f}" for k, v in stats.items())
        )
        self.last_alignment_stats = stats
        return total_loss / max(n_updates, 1)
