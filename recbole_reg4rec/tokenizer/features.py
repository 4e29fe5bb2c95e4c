"""Item feature vectors v_i that the tokenizers quantize (docs/design.md §2, "Item features").

Sources (``mpq_feature_source``):

- ``side_info``: the dataset's ``.item`` fields. token / token_seq fields become a TF-IDF bag of
  tokens, float fields are standardized, float_seq fields (precomputed embeddings) are taken as
  given; the blocks are put side by side and reduced by truncated SVD to ``feature_dim``.
- ``collaborative``: item embeddings factorized from the co-occurrence of items in the *training*
  interactions held by the dataset a model receives (``train_data._dataset``).
- ``hybrid``: both, each L2-normalized, concatenated.
- a path ending in ``.pth`` or ``.pt``: the item-embedding table of a trained RecBole model saved
  on the same dataset (e.g. SASRec's ``item_embedding.weight``), so that items that a sequential
  ID model places near each other share tokens (collaborative semantic IDs, two passes).
- any other value names a float_seq item field whose rows are used as they are.

Row 0 (RecBole's padding item) is always a zero vector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer

from recbole.utils import FeatureType

from .settings import TokenizerConfigError, TokenizerSettings


@dataclass
class ItemFeatures:
    """Feature vectors of the whole catalogue.

    Attributes:
        vectors: ``[item_num, d]`` float32; row 0 (padding) is zero.
        source: the feature source actually used (after any fallback).
        n_without_side_info: real items whose side information is empty (0 if not applicable).
        n_without_interactions: real items absent from the training interactions (their
            collaborative vector is zero).
    """

    vectors: torch.Tensor
    source: str
    n_without_side_info: int = 0
    n_without_interactions: int = 0


# --------------------------------------------------------------------------------------------
# Which inputs a feature source reads (also what the cache fingerprints)
# --------------------------------------------------------------------------------------------
def resolve_source(dataset, settings: TokenizerSettings, logger: Optional[logging.Logger] = None) -> str:
    """Return the source to use, falling back to ``collaborative`` when there is no ``.item`` data.

    Raises:
        TokenizerConfigError: ``mpq_feature_source`` names a field the item features lack.
    """
    source = settings.mpq_feature_source
    side_fields = side_info_fields(dataset)
    if source in ("side_info", "hybrid"):
        if not side_fields:
            if logger is not None:
                logger.info(
                    f"mpq_feature_source={source}: the dataset has no item side information "
                    "(no .item file, or load_col does not load its fields); using collaborative features only."
                )
            return "collaborative"
        return source
    if source == "collaborative":
        return source
    if is_checkpoint_source(source):
        if not Path(source).is_file():
            raise TokenizerConfigError(
                f"mpq_feature_source={source!r}: no such checkpoint file. Train an ID model on this dataset "
                "first (e.g. `run_recbole.py --model=SASRec`) and give the path of the .pth it saved."
            )
        return source
    # A named float_seq field.
    available = [f for f in side_fields if dataset.field2type[f] == FeatureType.FLOAT_SEQ]
    if source not in side_fields:
        raise TokenizerConfigError(
            f"mpq_feature_source={source!r} names no loaded item field. Set mpq_feature_source to one of "
            f"side_info, collaborative, hybrid"
            + (f", or a float_seq item field ({', '.join(available)})" if available else "")
            + f", or add {source!r} to load_col['item'] if the .item file has it."
        )
    if dataset.field2type[source] != FeatureType.FLOAT_SEQ:
        raise TokenizerConfigError(
            f"mpq_feature_source={source!r} is a {dataset.field2type[source].value} field; a named source must be "
            "a float_seq field holding one embedding per item. Use side_info to encode other fields."
        )
    return source


def side_info_fields(dataset) -> List[str]:
    """Loaded item fields other than the item ID, in a stable order."""
    if getattr(dataset, "item_feat", None) is None:
        return []
    return sorted(f for f in dataset.item_feat.columns if f != dataset.iid_field)


def build_item_features(
    dataset, settings: TokenizerSettings, logger: Optional[logging.Logger] = None, source: Optional[str] = None
) -> ItemFeatures:
    """Compute ``[item_num, d]`` feature vectors for every item of ``dataset``.

    ``source`` is the result of :func:`resolve_source` when the caller already has it.
    """
    logger = logger or logging.getLogger(__name__)
    source = source or resolve_source(dataset, settings, logger)
    item_num = dataset.item_num
    seed = int(settings.tokenizer_seed)

    if is_checkpoint_source(source):
        vectors = checkpoint_item_vectors(source, dataset)
        vectors[0] = 0.0
        return ItemFeatures(torch.from_numpy(vectors), source)
    if source not in ("side_info", "collaborative", "hybrid"):
        vectors = _field_matrix(dataset, source).astype(np.float32)
        _check_finite(vectors, source)
        vectors[0] = 0.0
        n_missing = int((np.abs(vectors[1:]).sum(1) == 0).sum())
        if n_missing:
            logger.info(f"{n_missing} items have an empty {source!r} embedding (zero vector).")
        return ItemFeatures(torch.from_numpy(vectors), source, n_without_side_info=n_missing)

    parts: List[np.ndarray] = []
    n_missing = n_cold = 0
    if source in ("side_info", "hybrid"):
        side, has_side = side_info_vectors(dataset, settings.feature_dim, seed)
        n_missing = int((~has_side[1:]).sum())
        if n_missing:
            hint = "" if source == "hybrid" else " (they share one vector; mpq_feature_source=hybrid tells them apart)"
            logger.info(f"{n_missing} of {item_num - 1} items have no side information{hint}.")
        parts.append(side)
    if source in ("collaborative", "hybrid"):
        collab, seen = collaborative_vectors(dataset, settings)
        n_cold = int((~seen[1:]).sum())
        if n_cold:
            logger.info(f"{n_cold} of {item_num - 1} items have no training interaction.")
        parts.append(collab)
    if len(parts) > 1:
        parts = [_l2_normalize(p) for p in parts]
    vectors = np.concatenate(parts, axis=1).astype(np.float32)
    vectors[0] = 0.0
    return ItemFeatures(torch.from_numpy(vectors), source, n_missing, n_cold)


# --------------------------------------------------------------------------------------------
# Item embeddings of a trained model
# --------------------------------------------------------------------------------------------
CHECKPOINT_SUFFIXES = (".pth", ".pt")
#: state-dict keys of an item-embedding table, in order of preference (RecBole's sequential models)
ITEM_TABLE_KEYS = ("item_embedding.weight", "item_emb.weight", "item_embeddings.weight")


def is_checkpoint_source(source: str) -> bool:
    """Whether ``mpq_feature_source`` names a saved model rather than a kind of feature."""
    return source.endswith(CHECKPOINT_SUFFIXES)


def checkpoint_item_vectors(path: str, dataset) -> np.ndarray:
    """``[item_num, d]`` float32 item embeddings read from a RecBole checkpoint of ``dataset``.

    The checkpoint must come from the same dataset (RecBole numbers items by the order of its atomic
    files, so the same dataset and filters give the same numbering); tables with extra rows after
    the catalogue (BERT4Rec's mask token) are cut to ``item_num`` rows.
    """
    from ..compat.checkpoints import CorruptCheckpointError, UnsafeCheckpointError, load_checkpoint

    try:  # the project's loader: weights only, one clear line for a corrupt or pickled file
        checkpoint = load_checkpoint(path, map_location="cpu")
    except (CorruptCheckpointError, UnsafeCheckpointError) as exc:
        raise TokenizerConfigError(f"mpq_feature_source={path!r}: {exc}") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else {}
    trained_on = (checkpoint.get("config") or {}).get("dataset") if isinstance(checkpoint, dict) else None
    if trained_on is not None and trained_on != dataset.dataset_name:
        raise TokenizerConfigError(
            f"mpq_feature_source={path!r} was trained on dataset {trained_on!r}, not {dataset.dataset_name!r}: "
            "item numbers differ between datasets; train the ID model on this dataset."
        )
    key = next((k for k in ITEM_TABLE_KEYS if k in state), None)
    if key is None:
        raise TokenizerConfigError(
            f"mpq_feature_source={path!r} holds no item-embedding table (looked for {', '.join(ITEM_TABLE_KEYS)}); "
            "save a sequential ID model such as SASRec, GRU4Rec or BERT4Rec."
        )
    table = state[key].detach().float().cpu().numpy()
    if table.ndim != 2 or table.shape[0] < dataset.item_num:
        raise TokenizerConfigError(
            f"mpq_feature_source={path!r}: its {key} has shape {tuple(table.shape)}, fewer rows than the "
            f"{dataset.item_num} items of {dataset.dataset_name!r} (the same dataset with other filters?)."
        )
    vectors = np.ascontiguousarray(table[: dataset.item_num], dtype=np.float32)
    _check_finite(vectors, key)
    return vectors


# --------------------------------------------------------------------------------------------
# Side information
# --------------------------------------------------------------------------------------------
def side_info_vectors(dataset, dim: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Encode the loaded ``.item`` fields.

    Returns:
        vectors: ``[item_num, <= dim]`` float array (row 0 = padding, zero after the caller).
        has_side: ``[item_num]`` bool, ``False`` where every token field is empty and every
            float_seq field is all-zero (RecBole fills float fields of missing rows with the mean,
            so those cannot tell).
    """
    item_num = dataset.item_num
    token_cols: List[sp.csr_matrix] = []
    dense_blocks: List[np.ndarray] = []
    has_side = np.zeros(item_num, dtype=bool)
    has_token_or_seq = False
    for field in side_info_fields(dataset):
        ftype = dataset.field2type[field]
        values = dataset.item_feat[field].numpy()
        if ftype in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
            ids = values.reshape(item_num, -1)
            rows, cols = np.nonzero(ids)  # token 0 is RecBole's padding / missing token
            counts = sp.csr_matrix(
                (np.ones(len(rows)), (rows, ids[rows, cols])), shape=(item_num, dataset.num(field))
            )
            token_cols.append(counts)
            has_side |= (ids != 0).any(1)
            has_token_or_seq = True
        elif ftype == FeatureType.FLOAT:
            col = values.astype(np.float64).reshape(item_num, 1)
            _check_finite(col, field)
            dense_blocks.append(_standardize(col))
        elif ftype == FeatureType.FLOAT_SEQ:
            mat = values.astype(np.float64).reshape(item_num, -1)
            _check_finite(mat, field)
            has_side |= (mat != 0).any(1)
            has_token_or_seq = True
            dense_blocks.append(_unit_mean_norm(mat))
    if not has_token_or_seq:
        has_side[:] = True  # only float fields: nothing tells a missing row apart

    blocks: List[sp.spmatrix] = []
    if token_cols:
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(sp.hstack(token_cols).tocsr())
        blocks.append(tfidf)  # rows already L2-normalized
    if dense_blocks:
        dense = np.concatenate(dense_blocks, axis=1)
        blocks.append(sp.csr_matrix(_unit_mean_norm(dense)))
    matrix = sp.hstack(blocks).tocsr()
    if matrix.shape[1] > dim:
        svd = TruncatedSVD(n_components=dim, algorithm="randomized", random_state=seed)
        vectors = svd.fit_transform(matrix)
    else:
        vectors = matrix.toarray()
    return vectors, has_side


def _field_matrix(dataset, field: str) -> np.ndarray:
    return dataset.item_feat[field].numpy().astype(np.float64).reshape(dataset.item_num, -1)


def _check_finite(values: np.ndarray, field: str) -> None:
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).any(axis=-1).sum()) if values.ndim > 1 else int((~np.isfinite(values)).sum())
        raise TokenizerConfigError(
            f"item field {field!r} holds {bad} non-numeric or infinite values: fix those rows of the .item file, "
            f"or drop {field!r} from load_col['item'] (mpq_feature_source reads every loaded item field)."
        )


def _standardize(x: np.ndarray) -> np.ndarray:
    std = x.std(0, keepdims=True)
    return (x - x.mean(0, keepdims=True)) / np.where(std > 0, std, 1.0)


def _unit_mean_norm(x: np.ndarray) -> np.ndarray:
    """Scale so the average row norm is 1: blocks of different widths weigh alike."""
    norm = np.linalg.norm(x, axis=1).mean()
    return x / norm if norm > 0 else x


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


# --------------------------------------------------------------------------------------------
# Collaborative embeddings
# --------------------------------------------------------------------------------------------
def training_sequences(dataset, history: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(history, next item) pairs from the dataset's interactions, which must be the training split.

    For a SequentialDataset's training split, ``inter_feat`` already holds one row per
    (prefix, target); otherwise each user's interactions are ordered by time (if any) and every
    item becomes a target of the items before it.

    Returns:
        hist: ``[N, history]`` long, most recent item last, left-padded with 0.
        target: ``[N]`` long.
    """
    inter = dataset.inter_feat
    iid = dataset.iid_field
    list_field = iid + dataset.config["LIST_SUFFIX"]
    if list_field in inter.columns:
        seq = inter[list_field]  # [N, L] left-aligned, 0-padded
        length = inter[dataset.config["ITEM_LIST_LENGTH_FIELD"]]  # [N]
        pos = length.unsqueeze(1) - history + torch.arange(history).unsqueeze(0)  # [N, W]
        hist = seq.gather(1, pos.clamp(min=0, max=seq.size(1) - 1))
        hist = hist.masked_fill(pos < 0, 0)
        return hist.long(), inter[iid].long()

    users = inter[dataset.uid_field].numpy()
    items = inter[iid].numpy()
    time_field = dataset.time_field
    if time_field in inter.columns:
        order = np.lexsort((inter[time_field].numpy(), users))  # by user, then time
    else:
        order = np.argsort(users, kind="stable")  # by user, file order kept
    users, items = users[order], items[order]
    start = np.r_[0, np.flatnonzero(np.diff(users)) + 1]  # first row of each user
    rank = np.arange(len(users)) - np.repeat(start, np.diff(np.r_[start, len(users)]))
    hist = np.zeros((len(users), history), dtype=np.int64)
    for k in range(1, history + 1):  # k-th previous item of the same user
        ok = rank >= k
        hist[ok, history - k] = items[np.flatnonzero(ok) - k]
    keep = rank > 0  # a user's first item has no history
    return torch.from_numpy(hist[keep]), torch.from_numpy(items[keep]).long()


def collaborative_vectors(dataset, settings: TokenizerSettings) -> Tuple[np.ndarray, np.ndarray]:
    """Item embeddings factorized from the training interactions' co-occurrence (item2vec's closed form).

    Every (history item at distance k, next item) pair of the training split adds ``1 / k`` to a
    symmetric co-occurrence matrix; its positive PMI (context counts smoothed by ``^0.75``) is
    factorized by truncated SVD, as word2vec's skip-gram implicitly does (Levy & Goldberg, 2014).
    Deterministic, and about a second on ml-100k where a softmax model needs minutes on 2 cores.

    Returns:
        vectors: ``[item_num, <= collab_dim]`` float array (``U sqrt(S)``); zero rows for items
            absent from the training interactions.
        seen: ``[item_num]`` bool, items present in the training interactions.
    """
    n = dataset.item_num
    hist, target = training_sequences(dataset, settings.collab_history)  # [N, W], [N]
    w = hist.size(1)
    distance = torch.arange(w, 0, -1).expand_as(hist)  # most recent item has distance 1
    mask = hist > 0
    rows = hist[mask].numpy()
    cols = target.unsqueeze(1).expand_as(hist)[mask].numpy()
    weight = (1.0 / distance[mask].double()).numpy()
    counts = sp.coo_matrix((weight, (rows, cols)), shape=(n, n)).tocsr()
    counts = (counts + counts.T).tocsr()  # order-free co-occurrence
    seen = np.zeros(n, dtype=bool)
    seen[rows] = True
    seen[target.numpy()] = True

    ppmi = _positive_pmi(counts)
    dim = min(settings.collab_dim, n - 2)
    svd = TruncatedSVD(n_components=dim, algorithm="randomized", random_state=int(settings.tokenizer_seed))
    u = svd.fit_transform(ppmi)  # = U S
    vectors = u / np.sqrt(np.maximum(svd.singular_values_, 1e-12))  # U sqrt(S)
    return vectors, seen


def _positive_pmi(counts: sp.csr_matrix, alpha: float = 0.75) -> sp.csr_matrix:
    """``max(0, log(p(i, j) / (p(i) p_alpha(j))))`` on the non-zero cells of ``counts``."""
    total = counts.sum()
    row = np.asarray(counts.sum(1)).ravel()
    col = np.asarray(counts.sum(0)).ravel() ** alpha
    col = col / col.sum()
    coo = counts.tocoo()
    pmi = np.log(coo.data / total) - np.log(row[coo.row] / total) - np.log(col[coo.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)
