"""The repository's top-level entry points (``run_recbole.py``, ``run_hyper.py``, ``reg4rec.py``),
loaded as modules so tests call their ``main`` in-process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def load_entry_point(name: str) -> ModuleType:
    """The module of ``<repository>/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"{name}_entry_point", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
