"""RecBole's defaults contradict each other for CE-loss sequential models.

``overall.yaml`` turns uniform negative sampling on for every model, while SASRec, GRU4Rec,
BERT4Rec ... default to ``loss_type: CE``, and RecBole then refuses its own defaults::

    train_neg_sample_args [{'distribution': 'uniform', ...}] should be None when the loss_type is CE.

so ``run_recbole.py --model=SASRec`` fails out of the box. When the negative sampling comes from
RecBole's defaults only (no config file, ``config_dict`` or command line of the user sets
``train_neg_sample_args``), we turn it off for CE-loss sequential models, which is the only
setting RecBole accepts for them. A user who asks for negative sampling together with CE still
gets RecBole's error: that is a real conflict.
"""

from __future__ import annotations

KEY = "train_neg_sample_args"


def user_sets(config, key: str) -> bool:
    """True when the user's config files, ``config_dict`` or command line set ``key``."""
    return any(key in (getattr(config, name, None) or {})
               for name in ("file_config_dict", "variable_config_dict", "cmd_config_dict"))


def resolve_ce_negative_sampling(config) -> bool:
    """Drop default negative sampling of a CE-loss sequential model. Returns True if it did."""
    from recbole.utils import ModelType

    final = config.final_config_dict
    if (
        final.get("loss_type") == "CE"
        and final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
        and final.get(KEY) is not None
        and not user_sets(config, KEY)
    ):
        final[KEY] = None
        return True
    return False


def install() -> None:
    """Resolve the contradiction whenever a ``Config`` is built (idempotent)."""
    from . import config_hooks

    config_hooks.add(resolve_ce_negative_sampling)
