"""Atomic file writes: readers see the old file or the whole new one, never half of it.

Every file we write (token caches, checkpoints, result tables) goes through :func:`atomic_open`:
the content is written to a temporary file in the destination's folder, flushed to disk, and
moved over the destination with ``os.replace`` (atomic on POSIX and Windows). A crash, a kill or
an exception leaves the destination untouched and removes the temporary file; two writers of the
same path end with one complete version. ``exclusive=True`` never replaces an existing file.

A temporary file is named ``.<destination name>.<pid>@<host>.<random>.tmp``: it names its
writer, so :func:`is_abandoned` can tell the temporary of a killed writer (safe to delete) from
one a live process is still writing.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, Optional, Tuple

#: a temporary of another machine (shared folder: its pid cannot be checked) counts as abandoned
#: once nobody has written to it for this long
FOREIGN_TEMPORARY_TIMEOUT_S = 24 * 3600

_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)\.[^.]+\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32]


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8", exclusive: bool = False
) -> Iterator[IO]:
    """Open ``path`` for writing atomically (``mode`` ``"w"`` or ``"wb"``).

    Args:
        exclusive: create ``path`` only if it does not exist yet (``FileExistsError`` otherwise,
            the existing file untouched), atomically also against other processes.

    Example::

        with atomic_open(folder / "runs.csv") as f:
            f.write(text)
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():  # fail before writing anything; os.link below settles races
        raise FileExistsError(f"{path} exists")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_host()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            _link_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _link_new(tmp: str, path: Path) -> None:
    """Move ``tmp`` to the new name ``path``; ``FileExistsError`` if ``path`` exists by now."""
    try:
        os.link(tmp, path)  # atomic test-and-create, whoever created path meanwhile
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a (tiny) race window remains here
        if path.exists():
            raise FileExistsError(f"{path} exists") from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def temporary_writer(name: str) -> Optional[Tuple[str, int, str]]:
    """``(destination name, pid, host)`` of an :func:`atomic_open` temporary file name, else None."""
    match = _TEMPORARY.match(name)
    if not match:
        return None
    return match["target"], int(match["pid"]), match["host"]


def _process_started_at(pid: int) -> Optional[float]:
    """Start time (epoch seconds) of the live process ``pid``; None if no such process."""
    try:
        import psutil

        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except ImportError:  # pragma: no cover - psutil comes with RecBole
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0.0  # alive (start time unknown)
    except Exception:  # psutil.NoSuchProcess, psutil.ZombieProcess (dead, not yet reaped)
        return None


def is_abandoned(tmp_path: str | os.PathLike) -> bool:
    """Whether the :func:`atomic_open` temporary ``tmp_path`` belongs to a writer that is gone.

    On this machine: its writer's pid is not running, or runs a process started after the file
    was last written (the pid was reused). From another machine: untouched for
    :data:`FOREIGN_TEMPORARY_TIMEOUT_S`. Files not named like our temporaries are never abandoned.
    """
    tmp_path = Path(tmp_path)
    writer = temporary_writer(tmp_path.name)
    if writer is None:
        return False
    _, pid, host = writer
    try:
        modified = tmp_path.stat().st_mtime
    except FileNotFoundError:
        return False  # finished (renamed) or already removed: nothing to do
    if host != _host():
        return time.time() - modified > FOREIGN_TEMPORARY_TIMEOUT_S
    started = _process_started_at(pid)
    # 1 s slack: process start times are rounded, file times are not
    return started is None or started > modified + 1.0


def remove_abandoned_temporaries(folder: str | os.PathLike) -> list:
    """Delete the abandoned :func:`atomic_open` temporaries directly in ``folder``; return their paths."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.is_file() and is_abandoned(entry.path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed
