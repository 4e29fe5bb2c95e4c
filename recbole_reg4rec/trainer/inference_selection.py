"""Choosing REG4Rec's ``auto`` inference settings on the validation split, after training.

The settings that act at inference only and depend on the dataset — the score mode, the weight
w of the item-ID head, the reflection weight, the reasoning steps L and the beam width — cost no
training to change, so the trained (best) model is evaluated on the validation split under a small
grid and the best validation score (``valid_metric``) wins. The grid is searched one group at a time:

1. score mode and w: ``id`` (the ID head alone), ``fused`` at each w of :data:`FUSION_WEIGHTS`,
   ``tokens``; then ``blend`` at the chosen w when ``fused`` won — so the choice is never below
   the ID head alone on validation;
2. the first-step weight u of :data:`FIRST_STEP_WEIGHTS` (not for ``id``, which runs no search);
3. the reflection weight of :data:`REFLECTION_WEIGHTS` (not for ``id``);
4. L = 1..M (not for ``id``);
5. the beam width (not for ``id``): a cost, not a quality knob. Evaluation time grows about
   linearly with it, so the narrowest width of :meth:`REG4Rec.beam_sizes` whose per-user
   validation values are on average not below the widest's (the width groups 1-4 were chosen
   at) is kept; any loss, however small, keeps the wider beam.

Groups 2-4 are secondary knobs with a neutral value (u = 0, no reflection, L = M): one leaves it only
when its validation gain over the neutral value exceeds :data:`MIN_GAIN_STANDARD_ERRORS` standard
errors of the per-user paired differences (the same users ranked under both settings). Chosen by
the plain best score, these knobs fitted validation noise: on three ml-100k seeds they took
reflection 0.5 / L = 1 for +0.0005 on validation and cost about 0.002 on test
(results/inference-ml-100k). ``evaluate`` returning a float instead of per-user values keeps the
plain best score.

About 28 validation passes on a model with M = 4 (a few seconds each on ml-100k on a CPU).

Only the settings set to ``auto`` are searched; the search starts from their provisional values
(:meth:`REG4Rec.provisional_inference`) whatever the model holds; the others keep their configured
value. Ties keep the earlier candidate. Nothing here sees the test split: the trainer passes its
validation data.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

FUSION_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
#: up to 32: the composed item head was chosen at the top of a 0..2 grid, then of a 0..8 grid in every ml-100k cell
#: of the paper-faithful model (6 of 6, D = 64 and 256), so validation had no larger value to choose
FIRST_STEP_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
REFLECTION_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
#: a secondary knob (first-step weight, reflection weight, L) leaves its neutral value only for a paired validation gain
#: above this many standard errors
MIN_GAIN_STANDARD_ERRORS = 1.0

Candidate = Dict[str, Any]


def score_candidates(model, searched: Optional[Iterable[str]] = None) -> List[Candidate]:
    """Group 1 of the grid: score mode x ID-head weight, restricted to the searched settings
    (default: the model's ``auto`` ones)."""
    auto = set(model.auto_inference if searched is None else searched)
    if "score_mode" in auto:  # blend is tried afterwards, at the w fused chose (see select_inference_settings)
        modes = ["id", "fused", "tokens"] if model.item_head_enabled else ["tokens"]
    else:
        modes = [model.score_mode]
    weights = FUSION_WEIGHTS if "item_fusion_weight" in auto else (model.item_fusion_weight,)
    out: List[Candidate] = []
    for mode in modes:
        if mode in ("fused", "blend"):
            out += [{"score_mode": mode, "item_fusion_weight": float(w)} for w in weights]
        else:  # the weight does not act in these modes
            out.append({"score_mode": mode})
    return out


def paired_gain(values: np.ndarray, neutral: np.ndarray) -> Tuple[float, float]:
    """Mean per-user gain of ``values`` over ``neutral`` (both ``[users]``, the same users) and its
    standard error."""
    diff = np.asarray(values, dtype=np.float64) - np.asarray(neutral, dtype=np.float64)
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return float(diff.mean()), se


def select_inference_settings(
    model,
    evaluate: Callable[[], Union[float, np.ndarray]],
    logger: logging.Logger = None,
    searched: Optional[Iterable[str]] = None,
) -> Tuple[Dict[str, Any], List[Tuple[Candidate, float]]]:
    """Choose the ``auto`` settings of ``model`` (or the ``searched`` ones, e.g. every setting in a
    study) on validation; returns the chosen settings and every (candidate, score).

    ``evaluate()`` scores the model as currently configured: the validation metric's per-user
    values ``[users]`` (their mean is the score; they let the secondary knobs be tested against
    noise) or one float.
    """
    logger = logger or logging.getLogger()
    auto = set(model.auto_inference if searched is None else searched)
    # neutral: no first-step score, no reflection, L = M
    secondary = {"first_step_weight": 0.0, "reflection_weight": 0.0, "reasoning_steps": model.n_codebooks}
    start = {**model.provisional_inference(), **secondary}
    model.configure_inference(**{key: start[key] for key in auto if key in start})
    chosen: Dict[str, Any] = {}
    trials: List[Tuple[Candidate, float]] = []
    seen: Dict[tuple, Tuple[float, Optional[np.ndarray]]] = {}  # full settings -> (score, per-user values)

    def measure(candidate: Candidate) -> Tuple[float, Optional[np.ndarray]]:
        model.configure_inference(**{**chosen, **candidate})
        key = tuple(sorted(model.inference_settings().items()))
        if key not in seen:
            result = evaluate()
            values = None if np.isscalar(result) else np.asarray(result, dtype=np.float64)
            seen[key] = (float(result) if values is None else float(values.mean()), values)
            trials.append((model.inference_settings(), seen[key][0]))
            logger.info(f"auto inference settings: {model.inference_settings()} -> valid {seen[key][0]:.4f}")
        return seen[key]

    def best_of(candidates: List[Candidate], neutral: Optional[Candidate] = None) -> None:
        """The best-scoring candidate; with ``neutral``, one that beats it by more than noise."""
        best, best_score, neutral_values = None, float("-inf"), None
        if neutral:
            best = neutral
            best_score, neutral_values = measure(neutral)
        for candidate in candidates:
            score, values = measure(candidate)
            if score <= best_score:
                continue
            if neutral_values is not None and values is not None:
                gain, se = paired_gain(values, neutral_values)
                if gain <= MIN_GAIN_STANDARD_ERRORS * se:
                    logger.info(f"auto inference settings: {candidate} gains {gain:+.5f} over {neutral} on "
                                f"validation, within noise (standard error {se:.5f}): kept {neutral}")
                    continue
            best, best_score = candidate, score
        chosen.update(best)
        model.configure_inference(**chosen)

    def narrowest_no_worse(candidates: List[Candidate]) -> None:
        """Of candidates ordered cheapest first, the first whose validation score is not below
        the last's (the widest, the one every knob above was chosen at)."""
        widest_score, widest_values = measure(candidates[-1])
        for candidate in candidates[:-1]:
            score, values = measure(candidate)
            gain = paired_gain(values, widest_values)[0] if values is not None and widest_values is not None \
                else score - widest_score
            if gain >= 0:
                logger.info(f"auto inference settings: {candidate} ranks validation no worse than {candidates[-1]} "
                            f"({gain:+.5f}): the cheaper one is kept")
                chosen.update(candidate)
                break
        else:
            chosen.update(candidates[-1])
        model.configure_inference(**chosen)

    if auto & {"score_mode", "item_fusion_weight"}:
        best_of(score_candidates(model, auto))
        if "score_mode" in auto and chosen.get("score_mode") == "fused":
            best_of([{"score_mode": "fused"}, {"score_mode": "blend"}])
    searches = model.score_mode != "id"
    if searches and "first_step_weight" in auto:
        best_of([{"first_step_weight": u} for u in FIRST_STEP_WEIGHTS],
                neutral={"first_step_weight": secondary["first_step_weight"]})
    if searches and "reflection_weight" in auto:
        best_of([{"reflection_weight": w} for w in REFLECTION_WEIGHTS],
                neutral={"reflection_weight": secondary["reflection_weight"]})
    if searches and "reasoning_steps" in auto:
        best_of([{"reasoning_steps": L} for L in range(1, model.n_codebooks + 1)],
                neutral={"reasoning_steps": secondary["reasoning_steps"]})
    if searches and "beam_size" in auto:
        narrowest_no_worse([{"beam_size": size} for size in model.beam_sizes()])
    for key in auto:  # settings the chosen mode does not read keep their provisional value
        chosen.setdefault(key, getattr(model, key))
    return chosen, trials
