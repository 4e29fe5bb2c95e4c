"""One hook point in RecBole's ``Config``: functions run right after the defaults are loaded.

``Config._set_default_parameters`` is where RecBole resolves its final settings from the
defaults, the user's files, ``config_dict`` and command line. Our config fixes
(:mod:`.config_checks`, :mod:`.loss_defaults`) run just before it, in the order they were added,
through a single wrapper, so the method is wrapped once however many fixes there are.
"""

from __future__ import annotations

import functools
from typing import Callable, List

#: Functions ``hook(config)`` run, in order, before ``Config._set_default_parameters``.
HOOKS: List[Callable] = []


def _wrap(original):
    @functools.wraps(original)
    def _set_default_parameters(self):
        for hook in HOOKS:
            hook(self)
        original(self)

    _set_default_parameters.__reg4rec_hooks__ = True
    return _set_default_parameters


def add(hook: Callable) -> None:
    """Run ``hook(config)`` for every ``Config`` built from now on (idempotent per hook)."""
    from recbole.config import Config

    if not getattr(Config._set_default_parameters, "__reg4rec_hooks__", False):
        Config._set_default_parameters = _wrap(Config._set_default_parameters)
    if hook not in HOOKS:
        HOOKS.append(hook)
