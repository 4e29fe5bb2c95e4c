"""Ray Tune API differences between old (<= 2.6) and current (>= 2.7) ray.

RecBole's ``objective_function`` calls ``tune.report(**metrics)``, which current ray rejects
(``report() got an unexpected keyword argument 'recall@10'``): it takes one ``metrics`` dict.
Ray also moved ``RunConfig`` / ``FailureConfig`` between ``ray.air``, ``ray.train`` and
``ray.tune``. These helpers pick whatever the installed ray offers; nothing is patched.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Dict


def report(metrics: Dict[str, Any]) -> None:
    """Report ``metrics`` for the current trial on old and new ray alike."""
    from ray import tune

    fn = tune.report
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - C-implemented or wrapped
        params = []
    takes_dict = bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )
    if takes_dict:
        fn(dict(metrics))
    else:  # ray <= 2.6: tune.report(_metric=None, **kwargs)
        fn(**metrics)


def _first_attr(name: str):
    import importlib

    for module in ("ray.tune", "ray.train", "ray.air"):
        try:
            obj = getattr(importlib.import_module(module), name, None)
        except ImportError:  # pragma: no cover
            obj = None
        if obj is not None:
            return obj
    raise ImportError(f"this ray version offers no {name}")  # pragma: no cover


def run_config(**kwargs):
    """``RunConfig(**kwargs)`` from wherever this ray keeps it."""
    return _first_attr("RunConfig")(**kwargs)


def failure_config(**kwargs):
    """``FailureConfig(**kwargs)`` from wherever this ray keeps it."""
    return _first_attr("FailureConfig")(**kwargs)


def trial_dir() -> str:
    """Absolute folder of the running trial (its working directory on current ray)."""
    try:
        from ray import tune

        path = tune.get_context().get_trial_dir()
        if path:
            return os.path.abspath(path)
    except Exception:  # pragma: no cover - old ray, or outside a trial
        pass
    return os.getcwd()


def trial_id():
    """Id of the running trial (unique within the sweep), or None outside a trial."""
    try:
        from ray import tune

        return tune.get_context().get_trial_id() or None
    except Exception:  # pragma: no cover - old ray, or outside a trial
        return None
