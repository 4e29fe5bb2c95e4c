"""Where REG4Rec's evaluation and training time goes at one point of the scale benchmark, beside SASRec.

Builds the synthetic catalogue of ``reg4rec.py scale`` at one N (default 2,000 items, 500 test
users, untrained models, one torch thread) and reports the median process CPU time (one thread, so
less sensitive to other jobs on a shared machine than wall time) of

* a full-ranking evaluation of the test users: REG4Rec's encoder, decoder steps (the beam's step
  function), candidate bookkeeping (catalogue check, path prior, completion) and the rest, against
  SASRec; the ratio of the encoder and decoder passes alone to SASRec bounds what any bookkeeping
  could reach at this beam width and depth;
* a training batch: REG4Rec's encoder, CRSS order planning, the remaining decoder passes and loss
  terms, backward and optimizer step, against SASRec's forward, backward and step.

    python reg4rec.py scale-breakdown --items 2000 --rounds 5
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List


class Timers:
    """CPU seconds spent inside wrapped callables, per label."""

    def __init__(self) -> None:
        self.spent: Dict[str, float] = defaultdict(float)

    def wrap(self, fn: Callable, label: str) -> Callable:
        def timed(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] += time.process_time() - start

        return timed


def _median_rows(rows: List[Dict[str, float]]) -> Dict[str, float]:
    return {key: statistics.median(r.get(key, 0.0) for r in rows) for key in rows[0]}


def eval_breakdown(sasrec, reg, rounds: int) -> Dict[str, float]:
    """Median CPU seconds of one full-ranking evaluation, REG4Rec split by part."""
    import torch

    from recbole_reg4rec.model import beam_candidates

    timers = Timers()
    model = reg.model.eval()
    make_step = model.step_function
    model.step_function = lambda ctx, *args, **kwargs: timers.wrap(make_step(ctx, *args, **kwargs), "decoder steps")
    model.encode = timers.wrap(model.encode, "encoder")
    grouped = beam_candidates.GroupedCandidates
    originals = {name: getattr(grouped, name) for name in ("expand", "select", "completion")}
    for name, fn in originals.items():
        setattr(grouped, name, timers.wrap(fn, "candidate bookkeeping"))
    rows = []
    try:
        with torch.no_grad():
            for r in range(rounds + 1):  # the first round warms the catalogue's group tables up
                timers.spent.clear()
                start = time.process_time()
                model.full_sort_predict(reg.test_batch).topk(10, dim=1)
                total = time.process_time() - start
                start = time.process_time()
                sasrec.model.eval().full_sort_predict(sasrec.test_batch).topk(10, dim=1)
                base = time.process_time() - start
                if r:
                    rest = total - sum(timers.spent.values())
                    # the network passes alone: what any search of this width and depth costs
                    # before bookkeeping (a lower bound of the ratio to SASRec)
                    passes = timers.spent["encoder"] + timers.spent["decoder steps"]
                    rows.append({"SASRec": base, "REG4Rec": total, **timers.spent,
                                 "rest (beam top-k, merging, ID head, scores)": rest,
                                 "REG4Rec / SASRec (ratio)": total / base,
                                 "encoder + decoder steps / SASRec (ratio)": passes / base})
    finally:
        del model.step_function, model.encode
        for name, fn in originals.items():
            setattr(grouped, name, fn)
    return _median_rows(rows)


def train_breakdown(sasrec, reg, batches: int) -> Dict[str, float]:
    """Median CPU seconds of one supervised training batch, split by part."""
    import torch

    timers = Timers()
    model = reg.model
    for name, label in (("encode", "REG4Rec encoder"), ("plan_training_paths", "REG4Rec order planning")):
        setattr(model, name, timers.wrap(getattr(model, name), label))
    optimizers = {b.name: torch.optim.Adam(b.model.parameters(), lr=1e-3) for b in (sasrec, reg)}
    loaders = {b.name: iter(b.train) for b in (sasrec, reg)}
    for b in (sasrec, reg):
        b.model.train()  # an epoch starts: with warm-up 0, REG4Rec samples CRSS orders
    rows = []
    try:
        for i in range(batches + 1):
            row = {}
            timers.spent.clear()
            for b in (sasrec, reg):
                batch = next(loaders[b.name])
                start = time.process_time()
                loss = b.model.calculate_loss(batch)
                forward = time.process_time()
                loss.backward()
                backward = time.process_time()
                optimizers[b.name].step()
                optimizers[b.name].zero_grad()
                end = time.process_time()
                row.update({f"{b.name} forward": forward - start, f"{b.name} backward": backward - forward,
                            f"{b.name} optimizer": end - backward, f"{b.name} total": end - start})
            row.update(timers.spent)
            row["REG4Rec decoder passes + losses"] = row["REG4Rec forward"] - sum(timers.spent.values())
            if i:  # the first batch warms up
                rows.append(row)
    finally:
        for name in ("encode", "plan_training_paths"):
            del model.__dict__[name]
    return _median_rows(rows)


def breakdown_command(args) -> int:
    """``reg4rec.py scale-breakdown``: prints the two tables, exit status 0."""
    import torch

    import recbole_reg4rec  # noqa: F401  (registry + compat layer)
    from ..run import parse_overrides
    from .scale import build, write_dataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        name = f"scale{args.items}"
        write_dataset(Path(tmp), name, args.items, args.users, 30, seed=0)
        extra = parse_overrides("--" + s for s in getattr(args, "set", []))
        sasrec = build("SASRec", Path(tmp), name, 2020, args.eval_users, {})
        reg = build("REG4Rec", Path(tmp), name, 2020, args.eval_users, extra)
        evaluation = eval_breakdown(sasrec, reg, args.rounds)
        training = train_breakdown(sasrec, reg, args.batches)
    settings = f", REG4Rec with {extra}" if extra else ""
    print(f"N = {args.items:,} items, {args.eval_users} test users, CPU seconds (1 thread), medians{settings}")
    for title, parts in (("evaluation", evaluation), ("training batch", training)):
        print(f"\n{title}:")
        for key, value in parts.items():
            print(f"  {key:44s} {value:8.3f}")
    return 0
