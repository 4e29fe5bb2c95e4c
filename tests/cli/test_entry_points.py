"""The repository's front doors: RecBole's two names plus reg4rec.py, each answering --help
without importing torch, RecBole or Ray (arguments are parsed before any heavy import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from entry_points import REPO

_PROBE = """
import runpy, sys
sys.argv = [{path!r}, *{args!r}]
try:
    runpy.run_path({path!r}, run_name="__main__")
except SystemExit as done:
    code = done.code
heavy = sorted(m for m in ("torch", "recbole", "ray", "pandas") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), "EXIT=" + str(code))
"""


def test_only_three_top_level_entry_points():
    assert sorted(p.name for p in REPO.glob("*.py")) == ["reg4rec.py", "run_hyper.py", "run_recbole.py"]


@pytest.mark.parametrize("script, args", [
    ("run_recbole.py", ["--help"]),
    ("run_hyper.py", ["--help"]),
    ("reg4rec.py", ["--help"]),
    ("reg4rec.py", ["benchmark", "--help"]),
    ("reg4rec.py", ["tokenize", "--help"]),
    ("reg4rec.py", ["explain", "--help"]),
    ("reg4rec.py", ["pars-sweep", "--help"]),
    ("reg4rec.py", ["pars-sweep-report", "--help"]),
    ("reg4rec.py", ["steps-curve", "--help"]),
    ("reg4rec.py", ["memory", "--help"]),
])
def test_help_answers_before_any_heavy_import(script, args):
    probe = _PROBE.format(path=str(REPO / script), args=args)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert "usage:" in out
    assert out.strip().endswith("HEAVY= EXIT=0"), out[-300:]


def test_a_tool_refuses_flags_it_does_not_take(capsys):
    from entry_points import load_entry_point

    with pytest.raises(SystemExit) as exit_info:
        load_entry_point("reg4rec").parse_args(["steps-curve", "--model_files", "a.pth", "--epochs=3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --epochs=3" in capsys.readouterr().err
