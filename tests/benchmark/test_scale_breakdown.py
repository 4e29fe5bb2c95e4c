"""``reg4rec.py scale-breakdown`` at tiny sizes: every part of both tables is timed."""

from __future__ import annotations

import re
from argparse import Namespace

from recbole_reg4rec.benchmark.scale_breakdown import breakdown_command


def test_breakdown_times_every_part_of_evaluation_and_training(workdir, capsys):
    args = Namespace(items=150, users=60, eval_users=10, rounds=1, batches=1, verbose=False, set=["beam_size=20"])
    assert breakdown_command(args) == 0
    out = capsys.readouterr().out
    assert "REG4Rec with {'beam_size': 20}" in out  # the REG4Rec override is parsed and reported
    times = {label.strip(): float(value) for label, value in re.findall(r"^  (.+?)\s+(\d+\.\d+)$", out, re.M)}
    for part in ("SASRec total", "REG4Rec total", "REG4Rec encoder", "REG4Rec order planning", "candidate bookkeeping",
                 "encoder", "decoder steps"):
        assert part in times, (part, out)
    assert all(value >= 0 for value in times.values())
    assert times["REG4Rec total"] > 0 and times["SASRec total"] > 0
    # the network passes alone are part of the whole evaluation: their ratio bounds it from below
    assert 0 < times["encoder + decoder steps / SASRec (ratio)"] <= times["REG4Rec / SASRec (ratio)"]
