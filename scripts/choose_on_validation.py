"""Choose between trained variants of one model on the validation split, then report their test.

Usage: python scripts/choose_on_validation.py LABEL=RUN_FOLDER [LABEL=RUN_FOLDER ...]
                                             [--incumbent LABEL] [--metric ndcg@10]

Each argument names a benchmark row (a cell label, e.g. ``faithful_D256``) and the run folder whose
``cells/`` hold it. The best row is the one with the highest mean validation metric over the seeds
that every row has; per seed, the script also counts how often each row is the best on validation.
With ``--incumbent`` (the current default), the best row replaces it only for a gain above the noise:
its mean per-seed gain over the incumbent must exceed one standard error of those paired gains
(the rule and the code of the ``auto`` inference settings: ``paired_gain``,
``MIN_GAIN_STANDARD_ERRORS``). Test is printed after the choice, for the record only: it never
enters the choice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List

from recbole_reg4rec.trainer.inference_selection import MIN_GAIN_STANDARD_ERRORS, paired_gain


def load_row(label: str, folder: str) -> Dict[int, dict]:
    """``{seed: cell}`` of the finished cells labelled ``label`` in ``folder/cells``."""
    cells = {}
    for path in sorted(Path(folder, "cells").glob(f"{label}-*__seed*.json")):
        cell = json.loads(path.read_text())
        if cell.get("status") == "ok" and cell.get("label") == label:
            cells[int(cell["seed"])] = cell
    if not cells:
        sys.exit(f"no finished cell labelled {label!r} in {folder}/cells: check the label and the folder")
    return cells


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", help="LABEL=RUN_FOLDER")
    parser.add_argument("--metric", default="ndcg@10")
    parser.add_argument("--incumbent", default=None, help="the label of the current default (kept unless beaten above the noise)")
    args = parser.parse_args(argv)
    rows = {}
    for item in args.rows:
        if "=" not in item:
            sys.exit(f"{item!r}: write each row as LABEL=RUN_FOLDER (e.g. faithful_D256=results/ml-100k-quick)")
        label, folder = item.split("=", 1)
        rows[label] = load_row(label, folder)
    if args.incumbent is not None and args.incumbent not in rows:
        sys.exit(f"--incumbent {args.incumbent!r} is none of the rows ({', '.join(rows)}): name one of them")
    seeds = sorted(set.intersection(*(set(cells) for cells in rows.values())))
    if not seeds:
        sys.exit("the rows share no seed: run every variant on the same seeds")

    def values(label, split):
        return [rows[label][s][split][args.metric] for s in seeds]

    wins = {label: 0 for label in rows}
    for s in seeds:
        wins[max(rows, key=lambda label: rows[label][s]["valid"][args.metric])] += 1
    best = max(rows, key=lambda label: statistics.mean(values(label, "valid")))
    print(f"validation {args.metric}, seeds {', '.join(map(str, seeds))}:")
    for label in rows:
        v = values(label, "valid")
        print(f"  {label:28s} {' / '.join(f'{x:.4f}' for x in v)}  mean {statistics.mean(v):.4f}  "
              f"best in {wins[label]} of {len(seeds)} seeds")
    chosen = best
    if args.incumbent is not None and best != args.incumbent:
        challenger, incumbent = values(best, "valid"), values(args.incumbent, "valid")
        mean, error = paired_gain(challenger, incumbent)  # per seed here, per user in the auto selection
        if len(seeds) < 2:
            error = float("inf")  # one seed gives no spread to judge the noise by: the incumbent stays
        above = mean > MIN_GAIN_STANDARD_ERRORS * error
        gains = " / ".join(f"{b - a:+.4f}" for a, b in zip(incumbent, challenger))
        print(f"{best} - {args.incumbent}: {gains}, mean {mean:+.4f} "
              f"± {error:.4f} standard error: {'above' if above else 'within'} the noise")
        chosen = best if above else args.incumbent
    print(f"chosen on validation: {chosen}")
    print(f"test {args.metric} (reported, not used):")
    for label in rows:
        t = values(label, "test")
        spread = statistics.stdev(t) if len(t) > 1 else 0.0
        print(f"  {label:28s} {' / '.join(f'{x:.4f}' for x in t)}  {statistics.mean(t):.4f} ± {spread:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
