"""Generative models of REG4Rec; importing this package registers them with RecBole by name."""

from ..registry import PROPERTIES_DIR, register_model
from .reg4rec import REG4Rec

__all__ = ["REG4Rec"]

# tokenizer defaults first, then the generator's own (later files override earlier ones)
_PROPERTIES = tuple(f for f in ("tokenizer.yaml", "model/REG4Rec.yaml") if (PROPERTIES_DIR / f).is_file())

register_model(REG4Rec, property_files=_PROPERTIES)
