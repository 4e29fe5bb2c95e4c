"""Small helpers shared across the package."""

from .atomic import atomic_open

__all__ = ["atomic_open"]
