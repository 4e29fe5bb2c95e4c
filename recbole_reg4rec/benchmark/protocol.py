"""The benchmark's shared protocol, its profiles, and the model list it runs.

Every cell of a benchmark (one model variant, one seed) is trained and evaluated with the same
:data:`PROTOCOL` — leave-one-out by time, full ranking over all items, Recall / NDCG / MRR / Hit
at 5, 10 and 20, early stopping on validation NDCG@10, a softmax (CE) loss without negative
sampling — and with the sizes and epoch budget of one *profile* (``quick`` for CPU, ``full`` for
a GPU; yaml files in ``profiles/``, or any yaml path with the same layout)::

    shared:            # keys every model gets
      hidden_size: 64
      ...
    models:            # optional per-model changes, logged at run time
      BERT4Rec: {mask_ratio: 0.2}

Models are named in a ``--models`` list, separated by commas. An entry is::

    Model                       # a registered or RecBole built-in model, e.g. SASRec, REG4Rec
    Model[key=value,key=value]  # a variant: these config keys changed for this entry only
    Model[@path/to/file.yaml]   # a variant whose settings come from a yaml file
    label=Model[...]            # the same, reported under a short label

for instance ``REG4Rec[item_fusion_weight=0]`` (paper-faithful token scoring) beside
``REG4Rec`` (fused). Values are typed as RecBole types command-line values
(:func:`recbole_reg4rec.run.parse_value`: ``0`` is an int, ``True`` a bool, ``[5,10]`` a list).

Configuration priority for one cell, lowest first: the model's own defaults < :data:`PROTOCOL`
< profile ``shared`` < profile ``models.<Model>`` < ``--config_files`` < ``--key=value`` flags
< the variant's settings < the cell's seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from ..run import parse_overrides, parse_value  # noqa: F401  (--key=value, RecBole's grammar)

PROFILES_DIR: Path = Path(__file__).resolve().parent / "profiles"

#: Evaluation protocol shared by every model of every benchmark.
PROTOCOL: Dict[str, Any] = {
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    },
    "metrics": ["Recall", "NDCG", "MRR", "Hit"],
    "topk": [5, 10, 20],
    "valid_metric": "NDCG@10",
    "valid_metric_bigger": True,
    "loss_type": "CE",
    "train_neg_sample_args": None,
}

#: Seeds of a benchmark with ``--seeds=n``: ``FIRST_SEED, FIRST_SEED + 1, ...``.
FIRST_SEED: int = 2020

#: Metric names the reports show, in this order.
METRICS: List[str] = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr", "hit") for k in (5, 10, 20)]


class BenchmarkError(ValueError):
    """A bad benchmark request (model, profile, seeds, flags); reported without a traceback."""


@dataclass(frozen=True)
class Profile:
    """A named set of shared sizes and epoch budget, plus per-model changes."""

    name: str
    path: Path
    shared: Dict[str, Any]
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def settings_for(self, model: str) -> Dict[str, Any]:
        """Profile settings for ``model``: ``shared`` updated by ``models[model]``."""
        return {**self.shared, **self.models.get(model, {})}


def available_profiles() -> List[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """Load a profile by name (``quick``, ``full``) or from a yaml file path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROFILES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise BenchmarkError(
                f"Unknown profile {name_or_path!r}. Available profiles: {', '.join(available_profiles())} "
                f"(or a path to a yaml file with 'shared:' and optional 'models:' sections)."
            )
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not isinstance(data.get("shared", {}), dict):
        raise BenchmarkError(f"Profile {path} must be a mapping with a 'shared:' mapping.")
    unknown = set(data) - {"shared", "models"}
    if unknown:
        raise BenchmarkError(f"Profile {path}: unknown sections {sorted(unknown)}; use 'shared' and 'models'.")
    models = data.get("models") or {}
    if not isinstance(models, dict) or not all(isinstance(v, dict) for v in models.values()):
        raise BenchmarkError(f"Profile {path}: 'models' must map model names to mappings of settings.")
    protocol_keys = sorted(set(data.get("shared") or {}).union(*map(set, models.values())) & set(PROTOCOL))
    if protocol_keys:
        raise BenchmarkError(
            f"Profile {path} sets protocol keys {protocol_keys}; the protocol is the same for every "
            f"profile (override it explicitly with --key=value if you must)."
        )
    return Profile(name=path.stem, path=path.resolve(), shared=dict(data.get("shared") or {}), models=models)


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``--models``: a model name, its variant settings and its report label."""

    label: str
    model: str
    settings: Tuple[Tuple[str, Any], ...] = ()
    eval_steps: Tuple[int, ...] = ()  # ``--steps``: also evaluate the trained model at each L
    #: ``--inference``: also evaluate the trained model under each of these inference settings
    eval_inference: Tuple[Tuple[Tuple[str, Any], ...], ...] = ()

    @property
    def settings_dict(self) -> Dict[str, Any]:
        return dict(self.settings)


_SPEC = re.compile(r"^(?:(?P<label>[A-Za-z0-9_.\-]+)=)?(?P<model>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<opts>.*)\])?$")


def split_top_level(text: str, sep: str = ",") -> List[str]:
    """Split ``text`` on ``sep`` outside square brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _parse_variant(opts: str, entry: str) -> Dict[str, Any]:
    settings: Dict[str, Any] = {}
    for item in split_top_level(opts):
        if item.startswith("@"):
            path = Path(item[1:])
            if not path.is_file():
                raise BenchmarkError(f"Model entry {entry!r}: settings file {str(path)!r} not found.")
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f) or {}
            if not isinstance(loaded, dict):
                raise BenchmarkError(f"Model entry {entry!r}: {path} must hold a mapping of settings.")
            settings.update(loaded)
        elif "=" in item:
            key, value = item.split("=", 1)
            settings[key.strip()] = parse_value(value.strip())
        else:
            raise BenchmarkError(f"Model entry {entry!r}: {item!r} is neither key=value nor @file.yaml.")
    return settings


def parse_models(text: str, known_model) -> List[ModelSpec]:
    """Parse a ``--models`` list (see the module docstring).

    Args:
        text: the comma-separated list.
        known_model: callable raising ``ValueError`` with a helpful message for an unknown name
            (the registry's ``get_model``).
    """
    specs: List[ModelSpec] = []
    for entry in split_top_level(text or ""):
        match = _SPEC.match(entry)
        if not match:
            raise BenchmarkError(
                f"Cannot read model entry {entry!r}: expected Model, Model[key=value,...], "
                f"Model[@file.yaml] or label=Model[...]."
            )
        model = match["model"]
        try:
            known_model(model)
        except ValueError as err:
            raise BenchmarkError(str(err)) from None
        settings = _parse_variant(match["opts"], entry) if match["opts"] is not None else {}
        label = match["label"] or (entry.replace(" ", "") if settings else model)
        specs.append(ModelSpec(label=label, model=model, settings=tuple(settings.items())))
    if not specs:
        raise BenchmarkError("No models given: pass e.g. --models=SASRec,GRU4Rec.")
    labels = [s.label for s in specs]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise BenchmarkError(f"Model entries appear twice: {duplicates}; give variants distinct labels.")
    return specs


def parse_steps(text: Optional[str]) -> List[int]:
    """``"1,2,4"`` or ``"1-4"`` -> sorted distinct positive ints; ``None``/empty -> ``[]``."""
    if not text:
        return []
    steps = set()
    try:
        for part in split_top_level(text):
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                steps.update(range(lo, hi + 1))
            else:
                steps.add(int(part))
    except ValueError:
        raise BenchmarkError(f"--steps={text!r}: expected numbers like 1,2,3 or a range like 1-4.") from None
    if not steps or min(steps) < 1:
        raise BenchmarkError(f"--steps={text!r}: reasoning steps must be integers >= 1.")
    return sorted(steps)


def expand_steps(specs: Sequence[ModelSpec], steps: Sequence[int], is_stepped) -> List[ModelSpec]:
    """Ask every spec whose model ``is_stepped`` to be evaluated at each L in ``steps`` as well.

    Reasoning steps L act at inference only (the beam emits L tokens and completes the items
    with the remaining codebooks' scores), so a cell trains its model once and evaluates the best
    model at every L (``eval_steps``); its report rows are ``<label>@L=<L>`` beside ``<label>``.
    Other specs are kept as they are."""
    if not steps:
        return list(specs)
    wanted = tuple(sorted({int(L) for L in steps}))
    return [replace(spec, eval_steps=wanted) if is_stepped(spec.model) else spec for spec in specs]


def parse_inference(text: Optional[str]) -> List[Tuple[Tuple[str, Any], ...]]:
    """``"score_mode=id;score_mode=blend,item_fusion_weight=2"`` -> one settings tuple per variant."""
    if not text:
        return []
    variants = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        settings = []
        for pair in part.split(","):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise BenchmarkError(
                    f"--inference={text!r}: expected key=value settings, ';' between variants, e.g. "
                    f"'score_mode=id;score_mode=tokens'."
                )
            settings.append((key.strip(), parse_value(value.strip())))
        variants.append(tuple(settings))
    return variants


def inference_label(label: str, settings) -> str:
    """Report label of a cell's model evaluated under other inference settings: ``REG4Rec[score_mode=id]``."""
    return f"{label}[{','.join(f'{k}={v}' for k, v in dict(settings).items())}]"


def expand_inference(specs: Sequence[ModelSpec], variants, is_generative) -> List[ModelSpec]:
    """Ask every spec whose model ``is_generative`` to be evaluated under each inference variant as
    well (one training, rows :func:`inference_label` beside ``<label>``), e.g. ranked by its ID head."""
    if not variants:
        return list(specs)
    return [replace(spec, eval_inference=tuple(variants)) if is_generative(spec.model) else spec for spec in specs]


def seeds_for(n: int) -> List[int]:
    """The seeds of an ``n``-seed benchmark."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BenchmarkError(f"--seeds must be a positive integer, got {n!r}.")
    return [FIRST_SEED + i for i in range(n)]


def cell_settings(
    spec: ModelSpec,
    profile: Profile,
    overrides: Mapping[str, Any],
    seed: int,
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Settings of one cell, split as RecBole layers them.

    Returns:
        ``(base, top)``: ``base`` (protocol + profile) is written to a yaml file that goes first in
        ``config_file_list`` so the user's ``--config_files`` can override it; ``top``
        (``--key=value`` flags, the variant's settings and the seed) is the ``config_dict``,
        which RecBole ranks above every file.
    """
    base = {**PROTOCOL, **profile.settings_for(spec.model)}
    top = {**dict(overrides), **spec.settings_dict, "seed": int(seed)}
    return base, top
