"""Print one line per benchmark cell of a folder's ``cells/``: the table the GPU scripts end with.

Usage: python scripts/cells_table.py RUN_FOLDER

Columns: epochs trained, the tested model's epoch, whether stage 2 replaced the stage-1 model
(``-`` for one-stage models), seconds per training epoch of each stage (the first epoch of a stage
left out of its mean: it carries one-off costs such as the CUDA context), the test pass's seconds,
the CUDA peak, and valid / test NDCG@10 with the stage-1 model's test NDCG@10 beside, test Recall@10.
"""

import json
import statistics
import sys
from pathlib import Path


def stage_mean(times, stage):
    seconds = [t for _, st, t in times if st == stage]
    if not seconds:
        return float("nan")
    return statistics.mean(seconds[1:] if len(seconds) > 1 else seconds)


def main(folder: str) -> None:
    print(f"{'cell':36s} {'device':7s} {'epochs':>6s} {'best':>4s} {'st2':>4s} {'s/ep 1':>7s} {'s/ep 2':>7s} "
          f"{'eval s':>7s} {'cuda MB':>8s} {'valid':>7s} {'test':>7s} {'st1 test':>8s} {'R@10':>7s}")
    for path in sorted(Path(folder, "cells").glob("*.json")):
        cell = json.loads(path.read_text())
        if cell.get("status") != "ok":
            print(f"{path.stem:36s} FAILED: {str(cell.get('error', ''))[:200]}")
            continue
        times = cell["epoch_times"]
        times = json.loads(times) if isinstance(times, str) else times
        stage1 = (cell.get("stage1_results") or {}).get("test", {}).get("ndcg@10", float("nan"))
        selected = {True: "yes", False: "no"}.get(cell.get("stage2_selected"), "-")
        print(f"{cell['cell_id']:36s} {cell['device']:7s} {cell['epochs_trained']:6d} {str(cell['best_epoch']):>4s} "
              f"{selected:>4s} {stage_mean(times, 1):7.2f} {stage_mean(times, 2):7.2f} {cell['eval_s']:7.2f} "
              f"{cell.get('cuda_peak_mb') or 0:8.0f} {cell['valid'].get('ndcg@10', float('nan')):7.4f} "
              f"{cell['test']['ndcg@10']:7.4f} {stage1:8.4f} {cell['test']['recall@10']:7.4f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
