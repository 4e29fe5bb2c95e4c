"""Semantic-ID tokenizers: every item of a RecBole dataset written as M tokens.

``build_semantic_ids(config, dataset)`` is the one entry point models use; ``config['tokenizer']``
picks MPQ (parallel codebooks, unordered tokens) or RQ (residual k-means, ordered tokens).
"""

from .build import build_semantic_ids, build_semantic_ids_with_report
from .diagnostics import TokenizerReport
from .semantic_ids import SemanticIDs
from .settings import TokenizerConfigError, TokenizerSettings

__all__ = [
    "build_semantic_ids",
    "build_semantic_ids_with_report",
    "SemanticIDs",
    "TokenizerConfigError",
    "TokenizerReport",
    "TokenizerSettings",
]
