"""Choosing REG4Rec's ``auto`` inference settings on the validation split, after training.

The settings that act at inference only and depend on the dataset — the score mode, the weight
w of the item-ID head, the reflection weight and the reasoning steps L — cost no training to
change, so the trained (best) model is evaluated on the validation split under a small grid and
the best validation score (``valid_metric``) wins. The grid is searched one group at a time:

1. score mode and w: ``id`` (the ID head alone), ``fused`` at each w of :data:`FUSION_WEIGHTS`,
   ``tokens``; then ``blend`` at the chosen w when ``fused`` won — so the choice is never below
   the ID head alone on validation;
2. the reflection weight of :data:`REFLECTION_WEIGHTS` (not for ``id``, which runs no search);
3. L = 1..M (not for ``id``).

About 20 validation passes on a model with M = 4 (a few seconds each on ml-100k on a CPU).

Only the settings set to ``auto`` are searched; the others keep their configured value. Ties keep
the earlier candidate. Nothing here sees the test split: the trainer passes its validation data.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

FUSION_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
REFLECTION_WEIGHTS = (0.0, 0.5, 1.0, 2.0)

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


def select_inference_settings(
    model, evaluate: Callable[[], float], logger: logging.Logger = None, searched: Optional[Iterable[str]] = None
) -> Tuple[Dict[str, Any], List[Tuple[Candidate, float]]]:
    """Choose the ``auto`` settings of ``model`` (or the ``searched`` ones, e.g. every setting in a
    study) by ``evaluate()`` (the validation score of the model as currently configured); returns
    the chosen settings and every (candidate, score)."""
    logger = logger or logging.getLogger()
    auto = set(model.auto_inference if searched is None else searched)
    chosen: Dict[str, Any] = {}
    trials: List[Tuple[Candidate, float]] = []

    seen: Dict[tuple, float] = {}  # full settings -> validation score (the same setting is evaluated once)

    def best_of(candidates: List[Candidate]) -> None:
        best, best_score = None, float("-inf")
        for candidate in candidates:
            model.configure_inference(**{**chosen, **candidate})
            key = tuple(sorted(model.inference_settings().items()))
            if key not in seen:
                seen[key] = float(evaluate())
                trials.append((model.inference_settings(), seen[key]))
                logger.info(f"auto inference settings: {model.inference_settings()} -> valid {seen[key]:.4f}")
            score = seen[key]
            if score > best_score:
                best, best_score = candidate, score
        chosen.update(best)
        model.configure_inference(**chosen)

    if auto & {"score_mode", "item_fusion_weight"}:
        best_of(score_candidates(model, auto))
        if "score_mode" in auto and chosen.get("score_mode") == "fused":
            best_of([{"score_mode": "fused"}, {"score_mode": "blend"}])
    searches = model.score_mode != "id"
    if searches and "reflection_weight" in auto:
        best_of([{"reflection_weight": w} for w in REFLECTION_WEIGHTS])
    if searches and "reasoning_steps" in auto:
        best_of([{"reasoning_steps": L} for L in range(1, model.n_codebooks + 1)])
    for key in auto:  # settings the chosen mode does not read keep their provisional value
        chosen.setdefault(key, getattr(model, key))
    return chosen, trials
