"""RecBole's hyper-parameter file format, parsed into a Ray Tune search space.

One parameter per line, ``<config key> <distribution> <arguments>``; blank lines and lines
starting with ``#`` are ignored::

    learning_rate loguniform -8,0          # exp(-8) .. exp(0), natural-log bounds (as RecBole)
    hidden_size choice [32,64,128]
    dropout_prob uniform 0.1,0.5
    n_layers randint 1,4                   # 1, 2 or 3 (upper bound excluded)
    MAX_ITEM_LIST_LENGTH quniform 10,50,10
    n_heads grid [1,2]                     # every value, once per sample (grid search)

Distributions (arguments comma-separated, values as Python literals):

==============  =======================  ==========================================
name            arguments                Ray Tune
==============  =======================  ==========================================
choice          ``[v1, v2, ...]``        ``tune.choice``
grid            ``[v1, v2, ...]``        ``tune.grid_search`` (each value tried)
uniform         ``low,high``             ``tune.uniform``
quniform        ``low,high,q``           ``tune.quniform``
loguniform      ``low,high`` (ln space)  ``tune.loguniform(exp(low), exp(high))``
qloguniform     ``low,high,q`` (ln)      ``tune.qloguniform(exp(low), exp(high), q)``
randint         ``low,high``             ``tune.randint`` (high excluded)
qrandint        ``low,high,q``           ``tune.qrandint`` (high included)
==============  =======================  ==========================================

``loguniform`` / ``qloguniform`` bounds are natural logarithms, exactly as in RecBole's own
``run_hyper.py`` (hyperopt convention): ``learning_rate loguniform -8,0`` searches
[0.000335, 1]. :func:`describe` prints the real range so a surprise is visible before a sweep.

Every problem is a :class:`ParamsFileError` naming the file, the line and the fix.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

#: distribution name -> (number of numeric arguments or None for a list, help text)
DISTRIBUTIONS: Dict[str, Tuple[Any, str]] = {
    "choice": (None, "choice [v1,v2,...]"),
    "grid": (None, "grid [v1,v2,...]"),
    "uniform": (2, "uniform low,high"),
    "quniform": (3, "quniform low,high,q"),
    "loguniform": (2, "loguniform ln_low,ln_high"),
    "qloguniform": (3, "qloguniform ln_low,ln_high,q"),
    "randint": (2, "randint low,high"),
    "qrandint": (3, "qrandint low,high,q"),
}


class ParamsFileError(ValueError):
    """A params file (or a key in it) that cannot be turned into a search space."""


@dataclass(frozen=True)
class ParamSpec:
    """One parsed line of a params file."""

    key: str
    distribution: str
    args: Tuple[Any, ...]  # numbers, or the list of values for choice / grid
    line: int
    source: str

    def where(self) -> str:
        return f"{self.source}, line {self.line}"

    def to_tune(self):
        """The Ray Tune search-space object for this parameter."""
        from ray import tune

        d, a = self.distribution, self.args
        if d == "choice":
            return tune.choice(list(a))
        if d == "grid":
            return tune.grid_search(list(a))
        if d == "uniform":
            return tune.uniform(*a)
        if d == "quniform":
            return tune.quniform(*_snap(a[0], a[1], a[2]))
        if d == "loguniform":
            return tune.loguniform(math.exp(a[0]), math.exp(a[1]))
        if d == "qloguniform":
            return tune.qloguniform(*_snap(math.exp(a[0]), math.exp(a[1]), a[2]))
        if d == "randint":
            return tune.randint(int(a[0]), int(a[1]))
        if d == "qrandint":
            return tune.qrandint(int(a[0]), int(a[1]), int(a[2]))
        raise AssertionError(d)  # parse() admits only DISTRIBUTIONS

    def describe(self) -> str:
        """Human-readable range, e.g. ``learning_rate: loguniform exp(-8)=0.000335 .. exp(0)=1``."""
        d, a = self.distribution, self.args
        if d in ("choice", "grid"):
            return f"{self.key}: {d} {list(a)}"
        if d in ("loguniform", "qloguniform"):
            text = f"{self.key}: {d} exp({a[0]:g})={math.exp(a[0]):.3g} .. exp({a[1]:g})={math.exp(a[1]):.3g}"
            return text + (f" step {a[2]:g}" if d == "qloguniform" else "")
        if d == "randint":
            return f"{self.key}: randint {int(a[0])} .. {int(a[1]) - 1}"
        return f"{self.key}: {d} " + ", ".join(f"{x:g}" for x in a)


def _snap(lower: float, upper: float, q: float) -> Tuple[float, float, float]:
    """Bounds moved inwards to multiples of ``q``: Ray Tune requires them, hyperopt (RecBole's
    convention) does not; the values a trial can get are the same multiples of ``q``."""
    def on_grid(x: float) -> bool:
        return math.isclose(x / q, round(x / q), rel_tol=1e-9, abs_tol=1e-9)

    low = lower if on_grid(lower) else math.ceil(lower / q) * q
    high = upper if on_grid(upper) else math.floor(upper / q) * q
    return low, high, q


def _literal(text: str, where: str, usage: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as err:
        raise ParamsFileError(
            f"{where}: cannot read {text!r} as a value ({err.__class__.__name__}). "
            f"Expected `{usage}`; quote strings, e.g. ['CE','BPR']."
        ) from None


def _parse_line(text: str, line: int, source: str) -> ParamSpec:
    where = f"{source}, line {line}"
    parts = text.split(None, 2)
    if len(parts) < 3:
        raise ParamsFileError(
            f"{where}: expected `<config key> <distribution> <arguments>`, got {text!r}. "
            f"Example: `learning_rate loguniform -8,0`."
        )
    key, dist, raw = parts
    if dist not in DISTRIBUTIONS:
        close = difflib.get_close_matches(dist, DISTRIBUTIONS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ParamsFileError(
            f"{where}: unknown distribution {dist!r} for {key!r}.{hint} "
            f"Known: {', '.join(DISTRIBUTIONS)}."
        )
    n_args, usage = DISTRIBUTIONS[dist]
    raw = raw.strip()
    if n_args is None:
        values = _literal(raw, where, f"{key} {usage}")
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ParamsFileError(f"{where}: {dist} for {key!r} needs a non-empty list, e.g. `{key} {usage}`.")
        return ParamSpec(key, dist, tuple(values), line, source)
    pieces = [p for p in raw.replace(" ", "").split(",") if p]
    if len(pieces) != n_args:
        raise ParamsFileError(
            f"{where}: {dist} for {key!r} takes {n_args} comma-separated numbers, got {raw!r}. "
            f"Write `{key} {usage}`."
        )
    numbers = []
    for p in pieces:
        value = _literal(p, where, f"{key} {usage}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsFileError(f"{where}: {p!r} is not a number (in `{key} {dist} {raw}`).")
        numbers.append(value)
    if numbers[0] >= numbers[1]:
        raise ParamsFileError(f"{where}: {dist} for {key!r} needs low < high, got {numbers[0]} and {numbers[1]}.")
    if n_args == 3 and numbers[2] <= 0:
        raise ParamsFileError(f"{where}: the step q of {key!r} must be positive, got {numbers[2]}.")
    if dist in ("randint", "qrandint") and not all(float(x).is_integer() for x in numbers):
        raise ParamsFileError(f"{where}: {dist} for {key!r} needs integers, got {raw!r}; use uniform/quniform for floats.")
    spec = ParamSpec(key, dist, tuple(numbers), line, source)
    try:
        domain = spec.to_tune()
        if n_args == 3 and domain.lower > domain.upper:
            raise ValueError(f"no multiple of q={numbers[2]} lies in the range")
    except ValueError as err:  # Ray's own checks, e.g. on quantization
        raise ParamsFileError(f"{where}: `{key} {dist} {raw}` is not a valid Ray Tune range: {err}") from None
    return spec


def parse_params_text(text: str, source: str = "<params>") -> List[ParamSpec]:
    """Parse the contents of a params file (see the module docstring)."""
    specs: List[ParamSpec] = []
    seen: Dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if " #" in stripped:  # trailing comment
            stripped = stripped.split(" #", 1)[0].rstrip()
        spec = _parse_line(stripped, number, source)
        if spec.key in seen:
            raise ParamsFileError(
                f"{source}, line {number}: {spec.key!r} is already defined on line {seen[spec.key]}; keep one."
            )
        seen[spec.key] = number
        specs.append(spec)
    if not specs:
        raise ParamsFileError(f"{source}: no parameters found; write one `<key> <distribution> <arguments>` per line.")
    return specs


def parse_params_file(path) -> List[ParamSpec]:
    """Parse a params file; the error names ``path`` and the line."""
    path = Path(path)
    if not path.is_file():
        raise ParamsFileError(f"params file {str(path)!r} not found.")
    return parse_params_text(path.read_text(), source=str(path))


def check_keys(specs: Sequence[ParamSpec], known_keys: Iterable[str], model: str, dataset: str) -> None:
    """Fail unless every parameter is a key of the Config built for ``model`` on ``dataset``.

    A key RecBole does not know would be set and silently ignored by every trial.
    """
    known = set(known_keys)
    for spec in specs:
        if spec.key in known:
            continue
        close = difflib.get_close_matches(spec.key, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ParamsFileError(
            f"{spec.where()}: {spec.key!r} is not a config key of {model} on {dataset}.{hint} "
            f"If a custom component reads it, declare its default in a yaml passed with --config_files."
        )


def search_space(specs: Sequence[ParamSpec]) -> Dict[str, Any]:
    """``param_space`` for ``tune.Tuner``."""
    return {spec.key: spec.to_tune() for spec in specs}
