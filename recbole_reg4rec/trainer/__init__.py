"""Trainers of our models; importing this package registers them with RecBole's ``get_trainer``."""

from ..registry import add_property_files, register_trainer
from .reg4rec_trainer import REG4RecTrainer

__all__ = ["REG4RecTrainer"]

add_property_files("REG4Rec", ["alignment.yaml"])
register_trainer("REG4Rec", REG4RecTrainer)
