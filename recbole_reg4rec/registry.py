"""Make RecBole find our models, trainers, datasets and default properties by name.

RecBole looks models up by scanning its own ``recbole.model.*`` packages, trainers by
``getattr(recbole.trainer, name + "Trainer")`` and dataset classes by
``getattr(recbole.data.dataset, name + "Dataset")``, and it reads default properties only from
its own ``properties/`` folder. After :func:`install` (run by ``import recbole_reg4rec``):

* ``get_model(name)`` answers our registered models first, then RecBole's; an unknown name is
  a ``ValueError`` listing every available model (RecBole itself says
  ``No module named 'lightgbm'``);
* trainers and dataset classes registered here are attributes of RecBole's packages, so its own
  lookups find them;
* ``Config(model=<ours>)`` loads our property files, then ``dataset/<dataset>.yaml`` if we ship
  one, at RecBole's *internal* priority, right after RecBole's own defaults — so config files,
  ``config_dict`` and the command line still override them, exactly as for a built-in model.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

def _find_properties_dir() -> Path:
    """``properties/`` of a source checkout / editable install, else the copy a regular
    install puts under ``<prefix>/share/recbole_reg4rec``."""
    candidates = [
        Path(__file__).resolve().parent.parent / "properties",
        Path(sys.prefix) / "share" / "recbole_reg4rec" / "properties",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


PROPERTIES_DIR: Path = _find_properties_dir()
#: Per-dataset settings for our models (e.g. which ``.item`` side-info columns to load), the
#: counterpart of RecBole's ``properties/dataset/<name>.yaml``.
DATASET_CONFIG_DIR: Path = PROPERTIES_DIR.parent / "dataset"

_MODELS: Dict[str, type] = {}
_PROPERTY_FILES: Dict[str, List[Path]] = {}


def property_file(relative: str) -> Path:
    """Absolute path of a property file: relative names are under our ``properties/`` folder."""
    path = PROPERTIES_DIR / relative  # an absolute ``relative`` stays as it is
    if not path.is_file():
        raise FileNotFoundError(f"property file {relative!r} not found under {PROPERTIES_DIR}")
    return path


def read_properties(relative: str) -> Dict[str, Any]:
    """The settings of one of our property files, parsed exactly as RecBole's ``Config`` parses
    it (its yaml dialect: ``1e-3`` is a float), so the values equal what ``config[key]`` holds."""
    import yaml
    from recbole.config import Config

    with open(property_file(relative), encoding="utf-8") as f:
        return yaml.load(f.read(), Loader=Config._build_yaml_loader(None)) or {}


def register_model(model_class: type, property_files: Sequence[str] = (), name: str | None = None) -> None:
    """Register ``model_class`` under ``name`` (default: its class name).

    Args:
        model_class: a ``recbole.model.abstract_recommender.AbstractRecommender`` subclass.
        property_files: yaml files relative to ``properties/``, loaded in order as the model's
            internal defaults.
        name: registry name (ablations register one class under several names).
    """
    name = name or model_class.__name__
    _MODELS[name] = model_class
    _PROPERTY_FILES[name] = [property_file(f) for f in property_files]


def model_property_files(model_name: str) -> List[Path]:
    """Our property files of a registered model, in load order (empty for RecBole's built-ins)."""
    return list(_PROPERTY_FILES.get(model_name, []))


def add_property_files(model_name: str, property_files: Sequence[str]) -> None:
    """Append property files to an already registered model (loaded after its own)."""
    _PROPERTY_FILES[model_name] = _PROPERTY_FILES[model_name] + [property_file(f) for f in property_files]


def register_trainer(model_name: str, trainer_class: type) -> None:
    """Make ``get_trainer(..., model_name)`` return ``trainer_class``."""
    import recbole.trainer

    setattr(recbole.trainer, f"{model_name}Trainer", trainer_class)


def register_dataset(model_name: str, dataset_class: type) -> None:
    """Make ``create_dataset`` use ``dataset_class`` for ``model_name``."""
    import recbole.data.dataset

    setattr(recbole.data.dataset, f"{model_name}Dataset", dataset_class)


def registered_models() -> List[str]:
    return sorted(_MODELS)


@functools.lru_cache(maxsize=1)
def builtin_models() -> List[str]:
    """Names of RecBole's built-in models (from its property files; nothing is imported)."""
    import recbole

    folder = Path(recbole.__file__).parent / "properties" / "model"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def available_models() -> List[str]:
    return registered_models() + [m for m in builtin_models() if m not in _MODELS]


def get_model(model_name):
    """Drop-in for ``recbole.utils.get_model`` that knows our models and fails helpfully."""
    if isinstance(model_name, type):
        return model_name
    if model_name in _MODELS:
        return _MODELS[model_name]
    if model_name in builtin_models():
        try:
            return _recbole_get_model(model_name)
        except ImportError as err:  # e.g. a built-in that needs an optional package
            raise ValueError(
                f"RecBole model {model_name!r} needs a package that is not installed ({err}). "
                f"Install it, or pick another model."
            ) from None
    raise ValueError(
        f"Unknown model {model_name!r}. Available models: {', '.join(available_models())}. "
        f"Names are case-sensitive; our models are registered by `import recbole_reg4rec`."
    )


_ORIGINAL_GET_MODEL = None


def _recbole_get_model(model_name):
    return _ORIGINAL_GET_MODEL(model_name)


def _wrap_load_internal_config_dict(original):
    @functools.wraps(original)
    def load_internal_config_dict(self, model, model_class, dataset):
        original(self, model, model_class, dataset)
        if model not in _MODELS:
            return
        for path in _PROPERTY_FILES[model]:
            self._update_internal_config_dict(str(path))
        dataset_file = DATASET_CONFIG_DIR / f"{dataset}.yaml"
        if dataset_file.is_file():
            self._update_internal_config_dict(str(dataset_file))

    load_internal_config_dict.__reg4rec_wrapped__ = True
    return load_internal_config_dict


def install() -> None:
    """Hook the lookups described in the module docstring into RecBole (idempotent)."""
    global _ORIGINAL_GET_MODEL
    import recbole.config.configurator as configurator
    import recbole.utils
    import recbole.utils.utils as recbole_utils

    if _ORIGINAL_GET_MODEL is None:
        _ORIGINAL_GET_MODEL = recbole_utils.get_model
    # recbole.quick_start binds `from recbole.utils import get_model` when it is imported: patched here
    # if it already is, else it binds ours when imported later (importing it now would load Ray: ~0.7 s)
    quick_start = sys.modules.get("recbole.quick_start.quick_start")
    for module in (recbole.utils, recbole_utils, configurator, quick_start):
        if module is not None:
            module.get_model = get_model
    Config = configurator.Config
    if not getattr(Config._load_internal_config_dict, "__reg4rec_wrapped__", False):
        Config._load_internal_config_dict = _wrap_load_internal_config_dict(Config._load_internal_config_dict)
