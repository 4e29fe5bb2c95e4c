"""The tests' name for :mod:`recbole_reg4rec.utils.synthetic` (tiny synthetic atomic datasets),
so test modules write ``from synthetic import write_synthetic_dataset``."""

from recbole_reg4rec.utils.synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset

__all__ = ["SYNTHETIC_LOAD_COL", "write_synthetic_dataset"]
