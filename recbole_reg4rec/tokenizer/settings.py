"""Tokenizer hyper-parameters: read from a RecBole ``Config``, checked once, then passed around.

The defaults are ``properties/tokenizer.yaml``'s, read from that file when this module is
imported (the file is the one place they are written), so a ``Config`` built without it still
gets them. Every check names the config key and how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

from ..registry import read_properties

TOKENIZERS = ("mpq", "rq", "pq")
#: Keys where an explicit ``~`` means something (no cache; seed from ``seed``), not "use the default".
NULLABLE = ("tokenizer_cache_dir", "tokenizer_seed")
FEATURE_SOURCES = ("side_info", "collaborative", "hybrid")
#: ``properties/tokenizer.yaml``: one key per field of :class:`TokenizerSettings`.
DEFAULTS: Dict[str, Any] = read_properties("tokenizer.yaml")


class TokenizerConfigError(ValueError):
    """A tokenizer config key holds a value the tokenizer cannot use."""


@dataclass(frozen=True)
class TokenizerSettings:
    tokenizer: str = DEFAULTS["tokenizer"]
    n_codebooks: int = DEFAULTS["n_codebooks"]
    codebook_size: int = DEFAULTS["codebook_size"]
    mpq_feature_source: str = DEFAULTS["mpq_feature_source"]
    feature_dim: int = DEFAULTS["feature_dim"]
    collab_dim: int = DEFAULTS["collab_dim"]
    collab_history: int = DEFAULTS["collab_history"]
    mpq_expert_hidden: int = DEFAULTS["mpq_expert_hidden"]
    mpq_latent_dim: int = DEFAULTS["mpq_latent_dim"]
    mpq_beta: float = DEFAULTS["mpq_beta"]
    mpq_orth_weight: float = DEFAULTS["mpq_orth_weight"]
    mpq_epochs: int = DEFAULTS["mpq_epochs"]
    mpq_max_steps: int = DEFAULTS["mpq_max_steps"]
    mpq_lr: float = DEFAULTS["mpq_lr"]
    mpq_batch_size: int = DEFAULTS["mpq_batch_size"]
    mpq_kmeans_init: bool = DEFAULTS["mpq_kmeans_init"]
    mpq_dead_code_restart: bool = DEFAULTS["mpq_dead_code_restart"]
    mpq_resolve_collisions: bool = DEFAULTS["mpq_resolve_collisions"]
    tokenizer_cache_dir: Optional[str] = DEFAULTS["tokenizer_cache_dir"]
    tokenizer_seed: Optional[int] = DEFAULTS["tokenizer_seed"]

    @classmethod
    def from_config(cls, config: Any) -> "TokenizerSettings":
        """Read every key from ``config`` (a RecBole ``Config`` or a dict); missing keys keep defaults.

        ``tokenizer_seed`` falls back to ``config['seed']``, then to 2020 (RecBole's default).
        """
        values: Dict[str, Any] = {}
        for f in fields(cls):
            value = _get(config, f.name)
            if value is not None or (f.name in NULLABLE and _has(config, f.name)):
                values[f.name] = value
        if values.get("tokenizer_seed") is None:
            seed = _get(config, "seed")
            values["tokenizer_seed"] = 2020 if seed is None else seed
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`TokenizerConfigError` on values no tokenizer can work with."""
        if str(self.tokenizer).lower() not in TOKENIZERS:
            raise TokenizerConfigError(
                f"tokenizer={self.tokenizer!r} is unknown: set tokenizer to one of {', '.join(TOKENIZERS)}."
            )
        _check_int(self.n_codebooks, "n_codebooks", 1, "it is M, the number of tokens per item (e.g. 4)")
        _check_int(self.codebook_size, "codebook_size", 2, "it is D, the codewords per codebook (e.g. 64)")
        for key in ("feature_dim", "collab_dim", "collab_history",
                    "mpq_expert_hidden", "mpq_latent_dim", "mpq_batch_size"):
            _check_int(getattr(self, key), key, 1, "it is a size")
        _check_int(self.mpq_epochs, "mpq_epochs", 0, "it is a number of epochs")
        _check_int(self.mpq_max_steps, "mpq_max_steps", 0, "it caps the optimizer steps, 0 = no cap")
        for key in ("mpq_beta", "mpq_orth_weight"):
            _check_float(getattr(self, key), key, allow_zero=True)
        _check_float(self.mpq_lr, "mpq_lr", allow_zero=False)
        if not isinstance(self.mpq_feature_source, str) or not self.mpq_feature_source:
            raise TokenizerConfigError(
                f"mpq_feature_source={self.mpq_feature_source!r}: set it to one of "
                f"{', '.join(FEATURE_SOURCES)}, a saved model's .pth or the name of a float_seq item field."
            )

    def check_catalogue(self, n_real_items: int) -> None:
        """Checks that need the catalogue size (``n_real_items`` excludes the padding item)."""
        if self.codebook_size > n_real_items:
            raise TokenizerConfigError(
                f"codebook_size={self.codebook_size} is larger than the catalogue ({n_real_items} items): "
                f"set codebook_size to at most {n_real_items} (a few times smaller is better)."
            )

    @property
    def ordered(self) -> bool:
        return self.tokenizer.lower() == "rq"

    def fingerprint_dict(self) -> Dict[str, Any]:
        """Every setting that changes the tokens (the cache folder does not)."""
        d = asdict(self)
        d.pop("tokenizer_cache_dir")
        d["tokenizer"] = d["tokenizer"].lower()
        return d


def _get(config: Any, key: str) -> Any:
    if isinstance(config, dict):
        return config.get(key)
    try:
        return config[key]
    except KeyError:
        return None


def _has(config: Any, key: str) -> bool:
    return key in config if isinstance(config, dict) else key in config.final_config_dict


def _check_int(value: Any, key: str, low: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TokenizerConfigError(f"{key}={value!r} is invalid: set {key} to an integer >= {low} ({why}).")


def _check_float(value: Any, key: str, allow_zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > 0 or (allow_zero and value == 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise TokenizerConfigError(f"{key}={value!r} is invalid: set {key} to a number {bound}.")
