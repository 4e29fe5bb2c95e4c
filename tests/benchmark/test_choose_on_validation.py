"""scripts/choose_on_validation.py: a default changes only for a validation gain above the noise; test never decides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "choose_on_validation.py"


def write_cells(folder: Path, label: str, valid, test) -> None:
    cells = folder / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    for seed, (v, t) in zip((2020, 2021, 2022), zip(valid, test)):
        record = {"status": "ok", "label": label, "seed": seed, "valid": {"ndcg@10": v}, "test": {"ndcg@10": t}}
        (cells / f"{label}-abc123__seed{seed}.json").write_text(json.dumps(record))


def choose(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def chosen_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("chosen on validation"))


def test_the_incumbent_stays_unless_beaten_above_one_standard_error(tmp_path):
    write_cells(tmp_path, "D64", valid=(0.0721, 0.0746, 0.0739), test=(0.070, 0.067, 0.061))
    write_cells(tmp_path, "D256_mixed", valid=(0.0785, 0.0692, 0.0731), test=(0.056, 0.060, 0.068))
    write_cells(tmp_path, "D256_steady", valid=(0.0760, 0.0785, 0.0779), test=(0.050, 0.050, 0.050))
    mixed = choose(f"D64={tmp_path}", f"D256_mixed={tmp_path}", "--incumbent", "D64")
    assert chosen_line(mixed) == "chosen on validation: D64"  # the better mean (+0.0001) is within the noise
    assert "within the noise" in mixed.stdout
    assert chosen_line(choose(f"D64={tmp_path}", f"D256_mixed={tmp_path}")) == "chosen on validation: D256_mixed"
    steady = choose(f"D64={tmp_path}", f"D256_steady={tmp_path}", "--incumbent", "D64")
    assert chosen_line(steady) == "chosen on validation: D256_steady"  # +0.0039 in every seed, worse on test


def test_a_missing_row_or_incumbent_is_a_clear_error(tmp_path):
    write_cells(tmp_path, "D64", valid=(0.07, 0.07, 0.07), test=(0.06, 0.06, 0.06))
    missing = choose(f"D64={tmp_path}", f"D128={tmp_path}")
    assert missing.returncode != 0 and f"no finished cell labelled 'D128' in {tmp_path}/cells" in missing.stderr
    unknown = choose(f"D64={tmp_path}", "--incumbent", "D32")
    assert unknown.returncode != 0 and "--incumbent 'D32' is none of the rows (D64)" in unknown.stderr
    malformed = choose("D64")
    assert malformed.returncode != 0 and "write each row as LABEL=RUN_FOLDER" in malformed.stderr
