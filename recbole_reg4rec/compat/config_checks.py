"""Type checks of user-given config values, before anything is loaded or trained.

RecBole takes ``epochs: "ten"`` or ``topk: abc`` without complaint and fails much later (or
never: a string learning rate reaches the optimizer). Every default it ships is declared in a
property yaml with a ``# (type) meaning`` comment, and so is every default of ours; this module
reads those declarations and checks the values the user set (config files, ``config_dict``,
command line) against them when a ``Config`` is built. A wrong value raises
:class:`ConfigTypeError` naming the key, the value, where it came from and the expected type.

Keys without a declaration (custom keys, or defaults of ``~`` without a type comment) are not
checked; ``None`` (``~``) is always accepted, since RecBole uses it for "off / automatic".
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

_DECLARATION = re.compile(r"^([A-Za-z_][\w]*)\s*:.*#\s*\(([^)]*)\)")
_WORDS = {
    "int": "int", "integer": "int", "float": "float", "str": "str", "string": "str", "bool": "bool",
    "list": "list", "dict": "dict", "none": "none", "optional": "none",
}


class ConfigTypeError(ValueError):
    """A config value has the wrong type for its key."""


def parse_declaration(text: str) -> Optional[frozenset]:
    """``"list or int or None"`` -> ``{"list", "int", "none"}``; ``None`` if a word is unknown."""
    kinds = set()
    for part in re.split(r"\s+or\s+|\||,", text.strip().lower()):
        word = part.strip().split(" ")[0]  # "list of int" -> "list"
        if not word:
            continue
        if word not in _WORDS:
            return None
        kinds.add(_WORDS[word])
    return frozenset(kinds) or None


@functools.lru_cache(maxsize=None)
def declared_types(path: str) -> Dict[str, frozenset]:
    """Top-level keys of a property yaml with their declared types."""
    out: Dict[str, frozenset] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                match = _DECLARATION.match(line)
                if match:
                    kinds = parse_declaration(match.group(2))
                    if kinds:
                        out[match.group(1)] = out.get(match.group(1), frozenset()) | kinds
    except OSError:
        pass
    return out


def _property_files(config) -> List[Tuple[str, str]]:
    """``(path, label)`` of every property file that declares defaults for this config."""
    import recbole

    from .. import registry

    root = Path(recbole.__file__).parent / "properties"
    model, dataset = str(config.model), str(config.dataset)
    files = [root / "overall.yaml", root / "dataset" / "sample.yaml", root / "model" / f"{model}.yaml",
             root / "dataset" / f"{dataset}.yaml"]
    files += sorted((root / "quick_start_config").glob("*.yaml"))
    files += list(registry._PROPERTY_FILES.get(model, []))
    files.append(registry.DATASET_CONFIG_DIR / f"{dataset}.yaml")
    return [(str(p), str(p)) for p in files if os.path.isfile(p)]


def _kind_of_default(value) -> Optional[str]:
    if value is None:
        return None
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", (list, tuple)),
                        ("dict", dict)):
        if isinstance(value, types):
            return kind
    return None


def _accepts(kinds: Iterable[str], value) -> bool:
    if value is None:
        return True
    for kind in kinds:
        if kind == "bool" and (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
            return True
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if kind == "str" and isinstance(value, (str, int, float, tuple)) and not isinstance(value, bool):
            return True  # RecBole's command line turns --gpu_id=0 into 0 and --gpu_id=0,1 into (0, 1)
        if kind == "list" and isinstance(value, (list, tuple)):
            return True
        if kind == "dict" and isinstance(value, dict):
            return True
    return False


def _source(config, key: str) -> str:
    if key in (getattr(config, "cmd_config_dict", None) or {}):
        return "the command line"
    if key in (getattr(config, "variable_config_dict", None) or {}):
        return "config_dict"
    return "a config file"


_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "True or False",
          "list": "a list", "dict": "a mapping", "none": "~ (None)"}


def check_config_types(config) -> None:
    """Raise :class:`ConfigTypeError` listing every user-set value of the wrong type."""
    declared: Dict[str, frozenset] = {}
    where: Dict[str, str] = {}
    for path, label in _property_files(config):
        for key, kinds in declared_types(path).items():
            declared[key] = declared.get(key, frozenset()) | kinds
            where.setdefault(key, label)
    internal = getattr(config, "internal_config_dict", {}) or {}
    problems = []
    for key, value in (config.external_config_dict or {}).items():
        kinds = set(declared.get(key, ()))
        default_kind = _kind_of_default(internal.get(key))
        if default_kind:
            kinds.add(default_kind)
        if not kinds or _accepts(kinds, value):
            continue
        expected = " or ".join(_NAMES[k] for k in sorted(kinds))
        default = internal.get(key)
        example = f" (default: {key}: {default!r})" if default is not None else ""
        problems.append(
            f"config key {key!r} = {value!r} (from {_source(config, key)}) must be {expected}{example}; "
            f"declared in {where.get(key, 'the defaults')}."
        )
    if problems:
        raise ConfigTypeError(
            "wrong config value type" + ("s" if len(problems) > 1 else "") + ":\n  " + "\n  ".join(problems)
            + "\nFix these values in your config file, config_dict or command line (--key=value)."
        )


def install() -> None:
    """Check every ``Config`` right after its defaults are loaded (idempotent)."""
    from . import config_hooks

    config_hooks.add(check_config_types)
