"""Atomic file writes: readers see the old file or the whole new one, never half of it.

Every file we write (token caches, checkpoints, result tables) goes through :func:`atomic_open`:
the content is written to a temporary file in the destination's folder, flushed to disk, and
moved over the destination with ``os.replace`` (atomic on POSIX and Windows). A crash, a kill or
an exception leaves the destination untouched and removes the temporary file; two writers of the
same path end with one complete version.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open ``path`` for writing atomically (``mode`` ``"w"`` or ``"wb"``).

    Example::

        with atomic_open(folder / "runs.csv") as f:
            f.write(text)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
