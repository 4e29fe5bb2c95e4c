"""Token cache housekeeping: temporaries of killed writers disappear at the next lookup, those of
live writers never do; ``clean_cache`` / ``reg4rec.py tokenize --clean`` apply age and size limits
and touch nothing but cache files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from entry_points import load_entry_point
from kill_points import tiny_config
from recbole_reg4rec.tokenizer.cache import SemanticIDCache, clean_cache
from recbole_reg4rec.utils.atomic import FOREIGN_TEMPORARY_TIMEOUT_S, _host, is_abandoned

TESTS = Path(__file__).resolve().parents[1]

_WRITER = """
import os, signal, sys
from recbole_reg4rec.utils.atomic import atomic_open
with atomic_open(sys.argv[1], "wb") as f:
    f.write(b"half of an entry")
    f.flush()
    print("writing", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.readline()  # a live writer: finishes when told
    f.write(b", the rest")
"""


def _start_writer(path: Path, how: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), how], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    if how == "live":
        assert proc.stdout.readline().strip() == "writing"
    else:
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL
    return proc


def _temporaries(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_lookup_removes_a_killed_writers_temporary_never_a_live_one(tmp_path):
    folder = tmp_path / "tokens"
    folder.mkdir()
    entry = "toy-mpq-0123456789abcdef.npz"
    _start_writer(folder / entry, "die")
    [dead] = _temporaries(folder)
    assert dead.startswith(f".{entry}.") and f"@{_host()}." in dead  # the name says who wrote it
    live = _start_writer(folder / "toy-rq-fedcba9876543210.npz", "live")
    assert len(_temporaries(folder)) == 2

    cache = SemanticIDCache(folder)
    assert cache.load(folder / entry, "0" * 64, 10) is None  # a miss, which also tidies the folder
    [alive] = _temporaries(folder)
    assert alive != dead  # the live writer's file is still there ...
    live.communicate("go\n", timeout=60)
    assert live.returncode == 0  # ... and it finished its write
    assert sorted(os.listdir(folder)) == ["toy-rq-fedcba9876543210.npz"]
    assert (folder / "toy-rq-fedcba9876543210.npz").read_bytes() == b"half of an entry, the rest"


def test_reused_pid_other_hosts_and_foreign_files(tmp_path):
    me = psutil.Process()
    started = me.create_time()

    def tmp(name: str, age_s: float) -> Path:
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age_s,) * 2)
        return path

    # our own pid, written after this process started: a live writer (this one)
    assert not is_abandoned(tmp(f".a.npz.{me.pid}@{_host()}.k2j4.tmp", 0))
    # our pid, but the file is older than this process: an earlier process that had the same pid
    assert is_abandoned(tmp(f".b.npz.{me.pid}@{_host()}.k2j4.tmp", time.time() - started + 3600))
    # another machine's temporary: its pid means nothing here; only a long-untouched one is stale
    assert not is_abandoned(tmp(".c.npz.1@otherhost.k2j4.tmp", 3600))
    assert is_abandoned(tmp(".d.npz.1@otherhost.k2j4.tmp", FOREIGN_TEMPORARY_TIMEOUT_S + 60))
    # files not named like our temporaries are never ours to delete
    assert not is_abandoned(tmp(".e.npz.abc.tmp", 10**6))
    assert not is_abandoned(tmp("notes.tmp", 10**6))
    assert socket.gethostname()  # (the host part comes from here)


def test_kill_during_a_cache_write_then_rerun_leaves_only_live_entries(workdir):
    """The hardening kill point (half an entry written, then SIGKILL), and the same build rerun."""
    config = tiny_config(workdir, state="WARNING")
    script = f"""
import sys; sys.path.insert(0, {str(TESTS)!r}); again = sys.argv[1:] == ["again"]; sys.argv = ["build"]
import torch; torch.set_num_threads(1)
import recbole_reg4rec
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole_reg4rec.tokenizer import build_semantic_ids
config = Config(model="REG4Rec", dataset="tiny", config_dict={config!r})
train, _, _ = data_preparation(config, create_dataset(config))
if not again:
    import kill_points; kill_points._arm("tokenizer")
print(build_semantic_ids(config, train._dataset).codes.sum().item())
"""
    killed = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    tokens = workdir / "tokens"
    [left] = os.listdir(tokens)
    assert left.endswith(".tmp")  # half an entry, of a writer that is gone
    again = subprocess.run([sys.executable, "-c", script, "again"], cwd=workdir, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    [entry] = os.listdir(tokens)  # the folder holds its live entry, nothing else
    assert entry.endswith(".npz") and left.startswith(f".{entry}.")


def _entries(folder: Path, ages_days_and_sizes):
    folder.mkdir(exist_ok=True)
    paths = []
    for i, (age, size) in enumerate(ages_days_and_sizes):
        path = folder / f"toy-mpq-{i:016x}.npz"
        path.write_bytes(b"\0" * size)
        os.utime(path, (time.time() - age * 86400,) * 2)
        paths.append(path)
    return paths


def test_clean_by_age_and_size_least_recently_used_first(tmp_path):
    folder = tmp_path / "tokens"
    mib = 2**20
    fresh, week, month, year = _entries(folder, [(0, mib), (7, mib), (30, mib), (365, mib)])
    (folder / "README.txt").write_text("not a cache file")
    (folder / "toy-mpq-notafingerprint.npz").write_bytes(b"neither")

    report = clean_cache(folder, max_age_days=60)
    assert report.removed == [year] and sorted(report.kept) == sorted([fresh, week, month])
    report = clean_cache(folder, max_size_mb=2.5)  # room for two: the two most recently used stay
    assert report.removed == [month] and report.kept == [fresh, week] and report.freed_bytes == mib
    report = clean_cache(folder)  # no limit: every entry
    assert sorted(report.removed) == sorted([fresh, week]) and not report.kept
    assert sorted(os.listdir(folder)) == ["README.txt", "toy-mpq-notafingerprint.npz"]
    assert clean_cache(tmp_path / "missing").summary() == "removed 0 file(s) (0.0 MiB), kept 0 cache entries"


def test_a_cache_hit_counts_as_use(workdir):
    """``load`` touches the entry it returns, so a size or age limit removes unused entries first."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation

    from recbole_reg4rec.tokenizer import build_semantic_ids

    config = Config(model="REG4Rec", dataset="tiny", config_dict=tiny_config(workdir, state="WARNING"))
    train, _, _ = data_preparation(config, create_dataset(config))
    build_semantic_ids(config, train._dataset)
    [entry] = (workdir / "tokens").iterdir()
    os.utime(entry, (time.time() - 90 * 86400,) * 2)
    build_semantic_ids(config, train._dataset)  # a hit
    assert time.time() - entry.stat().st_mtime < 60
    assert clean_cache(workdir / "tokens", max_age_days=30).kept == [entry]


def test_tokenize_clean_flag(workdir, capsys):
    folder = workdir / "tokens"
    old, new = _entries(folder, [(100, 10), (1, 10)])
    argv = ["tokenize", "--clean", "--max_age_days=30", f"--tokenizer_cache_dir={folder}"]
    assert load_entry_point("reg4rec").main(argv) == 0
    assert capsys.readouterr().out.strip() == f"{folder}: removed 1 file(s) (0.0 MiB), kept 1 cache entry"
    assert not old.exists() and new.exists()
