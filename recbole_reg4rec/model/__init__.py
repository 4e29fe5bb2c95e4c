"""Generative models of REG4Rec; importing this package registers them with RecBole by name."""

from ..registry import register_model
from .ablations import (
    ABLATIONS,
    REG4Rec_woCORP,
    REG4Rec_woCRSS,
    REG4Rec_woMPQ,
    REG4Rec_woMSRA,
    REG4Rec_woPARS,
    REG4Rec_woSteering,
)
from .faithful import REG4Rec_faithful
from .reg4rec import REG4Rec
from .tiger import TIGER

__all__ = [
    "REG4Rec",
    "REG4Rec_faithful",
    "REG4Rec_woCORP",
    "REG4Rec_woCRSS",
    "REG4Rec_woMPQ",
    "REG4Rec_woMSRA",
    "REG4Rec_woPARS",
    "REG4Rec_woSteering",
    "TIGER",
    "GENERATIVE_MODELS",
]

# Later files override earlier ones: tokenizer defaults, the generator's, the alignment stage's,
# then what defines a variant.
_BASE = ("tokenizer.yaml", "model/REG4Rec.yaml", "alignment.yaml")

register_model(REG4Rec, property_files=_BASE)
for _cls in (REG4Rec_faithful, *ABLATIONS, TIGER):
    register_model(_cls, property_files=(*_BASE, f"model/{_cls.__name__}.yaml"))

#: Every model trained by REG4RecTrainer.
GENERATIVE_MODELS = (REG4Rec, REG4Rec_faithful, *ABLATIONS, TIGER)
