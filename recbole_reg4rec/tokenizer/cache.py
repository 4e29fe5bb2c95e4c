"""On-disk cache of semantic IDs, keyed by what the tokens depend on.

The key (fingerprint) hashes the item tokens, the inputs of the feature source actually used
(training interactions for collaborative features, the loaded item fields for side info) and
every tokenizer setting. A file is an ``.npz`` (no pickles: ``allow_pickle=False``) that stores
its own fingerprint and a checksum of its content; it is written to a temporary file and moved
into place with ``os.replace``, so readers never see half a file. A file that fails to load or to
verify is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..utils.atomic import atomic_open
from .features import side_info_fields
from .semantic_ids import SemanticIDs
from .settings import TokenizerSettings

CACHE_VERSION = "reg4rec-semantic-ids-v1"


def dataset_fingerprint(dataset, settings: TokenizerSettings, source: str) -> str:
    """sha256 over the dataset content the tokens depend on and the tokenizer settings."""
    h = hashlib.sha256()

    def add(name: str, payload: bytes) -> None:
        h.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)

    add("version", CACHE_VERSION.encode())
    add("settings", json.dumps({**settings.fingerprint_dict(), "source": source}, sort_keys=True).encode())
    add("item_tokens", "\n".join(map(str, dataset.field2id_token[dataset.iid_field])).encode())
    if source in ("collaborative", "hybrid"):
        inter = dataset.inter_feat
        for name in sorted(inter.columns):
            if name in _interaction_fields(dataset):
                add(f"inter:{name}", _tensor_bytes(inter[name]))
    if source in ("side_info", "hybrid"):
        used = side_info_fields(dataset)
    elif source == "collaborative":
        used = []
    else:
        used = [source]
    for name in used:
        add(f"item:{name}:{dataset.field2type[name].value}", _tensor_bytes(dataset.item_feat[name]))
        if name in dataset.field2id_token:
            add(f"vocab:{name}", "\n".join(map(str, dataset.field2id_token[name])).encode())
    return h.hexdigest()


def _interaction_fields(dataset):
    """Interaction fields the collaborative model reads."""
    cfg = dataset.config
    iid = dataset.iid_field
    return {dataset.uid_field, iid, dataset.time_field, iid + cfg["LIST_SUFFIX"], cfg["ITEM_LIST_LENGTH_FIELD"]}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    a = t.detach().cpu().contiguous().numpy()
    return str((a.dtype.str, a.shape)).encode() + a.tobytes()


def _checksum(codes: np.ndarray, sizes: np.ndarray, ordered: bool, report: str, fingerprint: str) -> str:
    h = hashlib.sha256()
    for part in (codes.astype("<i8").tobytes(), sizes.astype("<i8").tobytes(), bytes([ordered]),
                 report.encode(), fingerprint.encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


class SemanticIDCache:
    """Semantic IDs stored under ``folder`` as ``<dataset>-<tokenizer>-<fingerprint[:16]>.npz``."""

    def __init__(self, folder: str | os.PathLike, logger: Optional[logging.Logger] = None) -> None:
        self.folder = Path(folder)
        self.logger = logger or logging.getLogger(__name__)

    def path(self, dataset_name: str, tokenizer: str, fingerprint: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(dataset_name))
        return self.folder / f"{safe}-{tokenizer}-{fingerprint[:16]}.npz"

    def load(self, path: Path, fingerprint: str, n_items: int) -> Optional[Tuple[SemanticIDs, dict]]:
        """Return ``(semantic_ids, report_dict)`` or ``None`` on a miss or a damaged file."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                codes, sizes = z["codes"], z["codebook_sizes"]
                ordered, report = bool(z["ordered"]), str(z["report"])
                stored_fp, checksum = str(z["fingerprint"]), str(z["checksum"])
            if stored_fp != fingerprint:
                raise ValueError("fingerprint mismatch")
            if checksum != _checksum(codes, sizes, ordered, report, stored_fp):
                raise ValueError("checksum mismatch")
            if codes.shape[0] != n_items:
                raise ValueError(f"{codes.shape[0]} rows for {n_items} items")
            sem = SemanticIDs(torch.from_numpy(codes.astype(np.int64)), tuple(int(s) for s in sizes), ordered)
            return sem, json.loads(report)
        except Exception as err:  # any damage (truncation, bad zip, wrong content) means rebuild
            self.logger.warning(f"semantic-ID cache {path} is unreadable or corrupted ({err!r}); rebuilding it.")
            return None

    def save(self, path: Path, fingerprint: str, sem: SemanticIDs, report: dict) -> None:
        """Write atomically: a temporary file in the same folder, then ``os.replace``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        codes = sem.codes.cpu().numpy().astype(np.int64)
        sizes = np.asarray(sem.codebook_sizes, dtype=np.int64)
        report_json = json.dumps(report, sort_keys=True, default=str)
        with atomic_open(path, "wb") as f:
            np.savez(
                f, codes=codes, codebook_sizes=sizes, ordered=np.bool_(sem.ordered), report=np.str_(report_json),
                fingerprint=np.str_(fingerprint),
                checksum=np.str_(_checksum(codes, sizes, sem.ordered, report_json, fingerprint)),
            )
