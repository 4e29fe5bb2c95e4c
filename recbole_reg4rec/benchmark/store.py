"""Resumable results store: one JSON file per finished cell, written atomically.

Layout under the benchmark's output folder::

    cells/<cell_id>.json      # one finished cell (runner result), the source of truth
    requests/<cell_id>.json   # what the cell was asked to run (for reruns by hand)
    runs.csv                  # every finished cell of the current plan, rebuilt from cells/

A cell file appears only through :func:`write_json_atomic` (temporary file in the same folder,
fsync, ``os.replace``), so it is either complete or absent: a cell killed mid-way leaves
nothing (or a stray ``*.tmp``, ignored) and is run again. A cell counts as finished only when
its file parses, says ``status: ok`` and carries the ``spec_hash`` of the current request —
changing the command's settings reruns the cells it affects instead of reusing stale numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from ..utils.atomic import atomic_open


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old file or the whole new one."""
    with atomic_open(path) as f:
        json.dump(data, f, indent=1, sort_keys=False, default=str)


def write_text_atomic(path: Path, text: str) -> None:
    """Text counterpart of :func:`write_json_atomic` (CSV, markdown)."""
    with atomic_open(path) as f:
        f.write(text)


def spec_hash(request: Dict[str, Any]) -> str:
    """Hash of everything that decides a cell's numbers (see :meth:`ResultStore.is_done`)."""
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def defaults_hash(paths: Iterable[Path]) -> str:
    """Hash of the texts of a model's default-settings files: a cell run under other defaults is
    not the cell the current request asks for, although its settings read the same."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cell_id(label: str, seed: int) -> str:
    """File-system-safe, unique id of a (label, seed) cell."""
    slug = re.sub(r"[^A-Za-z0-9_.=@-]+", "_", label).strip("_")[:60] or "model"
    digest = hashlib.sha1(label.encode()).hexdigest()[:6]
    return f"{slug}-{digest}__seed{int(seed)}"


class ResultStore:
    """Finished cells of one benchmark output folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.requests_dir = self.root / "requests"

    def cell_path(self, cid: str) -> Path:
        return self.cells_dir / f"{cid}.json"

    def request_path(self, cid: str) -> Path:
        return self.requests_dir / f"{cid}.json"

    def load(self, cid: str) -> Optional[Dict[str, Any]]:
        """The cell's record, or ``None`` if absent or unreadable (e.g. truncated by hand)."""
        path = self.cell_path(cid)
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_done(self, cid: str, expected_spec_hash: str, expected_defaults_hash: Optional[str] = None) -> bool:
        """True when the cell finished under exactly the current request and, when both sides
        record it, the same model defaults (cells written before defaults were recorded pass)."""
        record = self.load(cid)
        if not (record and record.get("status") == "ok" and record.get("spec_hash") == expected_spec_hash):
            return False
        recorded = record.get("defaults_hash")
        return recorded is None or expected_defaults_hash is None or recorded == expected_defaults_hash

    def save(self, cid: str, record: Dict[str, Any]) -> None:
        write_json_atomic(self.cell_path(cid), record)

    def records(self, cids: Iterable[str]) -> List[Dict[str, Any]]:
        """Records of the given cells that exist, in the given order."""
        return [r for r in (self.load(c) for c in cids) if r is not None]
