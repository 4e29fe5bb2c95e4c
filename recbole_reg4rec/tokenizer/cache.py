"""On-disk cache of semantic IDs, keyed by what the tokens depend on.

The key (fingerprint) hashes the item tokens, the inputs of the feature source actually used
(training interactions for collaborative features, the loaded item fields for side info, the
saved model's bytes for a checkpoint source) and
every tokenizer setting. A file is an ``.npz`` (no pickles: ``allow_pickle=False``) that stores
its own fingerprint and a checksum of its content; it is written to a temporary file and moved
into place with ``os.replace``, so readers never see half a file. A file that fails to load or to
verify is reported and rebuilt.

Folder layout (``tokenizer_cache_dir``, default ``saved/semantic_ids``), flat:

* ``<dataset>-<tokenizer>-<fingerprint[:16]>.npz``: one entry per distinct build. Its
  modification time is its last use (a cache hit touches it).
* ``.<entry name>.<pid>@<host>.<random>.tmp``: an entry being written by process ``pid`` on
  ``host``, or left behind by a writer that was killed. Every cache lookup deletes the latter
  (:func:`~recbole_reg4rec.utils.atomic.is_abandoned`: the pid is gone or was reused); a
  temporary of a live writer is never touched.

Nothing else is created there, and :func:`clean_cache` (``reg4rec.py tokenize --clean``) deletes
nothing else: old or surplus entries (by age or total size, least recently used first, or all)
and abandoned temporaries. Deleting an entry is always safe: the next run rebuilds it (a process
that has the file open keeps reading it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..utils.atomic import atomic_open, remove_abandoned_temporaries
from .features import is_checkpoint_source, side_info_fields
from .semantic_ids import SemanticIDs
from .settings import TokenizerSettings

CACHE_VERSION = "reg4rec-semantic-ids-v1"

#: an entry's file name: ``<dataset>-<tokenizer>-<16 hex digits of the fingerprint>.npz``
ENTRY_NAME = re.compile(r"^.+-[A-Za-z0-9_]+-[0-9a-f]{16}\.npz$")


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
    if is_checkpoint_source(source):  # the saved model's content, not its path, decides the tokens
        add("checkpoint", hashlib.sha256(Path(source).read_bytes()).digest())
    if source in ("side_info", "hybrid"):
        used = side_info_fields(dataset)
    elif source == "collaborative" or is_checkpoint_source(source):
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
        """Return ``(semantic_ids, report_dict)`` or ``None`` on a miss or a damaged file.

        Also deletes the temporaries killed writers left in the folder (see the module docstring).
        """
        for tmp in remove_abandoned_temporaries(self.folder):
            self.logger.info(f"semantic-ID cache: removed {tmp.name}, left by a writer that no longer runs")
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
            with contextlib.suppress(OSError):  # mark it used (a read-only cache still works)
                os.utime(path)
            return sem, json.loads(report)
        except FileNotFoundError:  # removed meanwhile (a clean): a miss
            return None
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


# --- housekeeping ---------------------------------------------------------------------------


@dataclass
class CleanReport:
    """What :func:`clean_cache` did: files removed, entries kept, bytes of the removed entries."""

    removed: List[Path] = field(default_factory=list)
    kept: List[Path] = field(default_factory=list)
    freed_bytes: int = 0

    def summary(self) -> str:
        return (f"removed {len(self.removed)} file(s) ({self.freed_bytes / 2**20:.1f} MiB), "
                f"kept {len(self.kept)} cache entr{'y' if len(self.kept) == 1 else 'ies'}")


def clean_cache(
    folder: str | os.PathLike,
    max_age_days: Optional[float] = None,
    max_size_mb: Optional[float] = None,
) -> CleanReport:
    """Delete abandoned temporaries and cache entries beyond the limits (see the module docstring).

    Args:
        folder: the cache folder (``tokenizer_cache_dir``).
        max_age_days: delete entries unused for longer than this.
        max_size_mb: then delete the least recently used entries until the rest fit in this size.
            Without either limit every entry is deleted.

    Only files named like entries or our temporaries are considered: other files in ``folder``
    and temporaries of live writers stay.
    """
    folder = Path(folder)
    report = CleanReport()

    def remove(path: Path, size: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.removed.append(path)
            report.freed_bytes += size

    if not folder.is_dir():
        return report
    for tmp in remove_abandoned_temporaries(folder):
        report.removed.append(tmp)
    entries = []
    for path in folder.iterdir():
        if path.is_file() and ENTRY_NAME.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
    entries.sort(key=lambda e: e[0], reverse=True)  # most recently used first
    now = time.time()
    budget = None if max_size_mb is None else max_size_mb * 2**20
    used = 0
    for used_at, size, path in entries:
        too_old = max_age_days is not None and now - used_at > max_age_days * 86400
        too_big = budget is not None and used + size > budget
        if too_old or too_big or (max_age_days is None and budget is None):
            remove(path, size)
        else:
            used += size
            report.kept.append(path)
    return report
