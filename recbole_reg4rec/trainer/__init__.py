"""Trainers of our models; importing this package registers them with RecBole's ``get_trainer``."""

from ..model import GENERATIVE_MODELS
from ..registry import register_trainer
from .reg4rec_trainer import REG4RecTrainer

__all__ = ["REG4RecTrainer"]

for _cls in GENERATIVE_MODELS:
    register_trainer(_cls.__name__, REG4RecTrainer)
