"""Benchmark our models and RecBole's built-ins side by side, under one protocol, over seeds.

    python run_benchmark.py --dataset=ml-100k --models=REG4Rec,SASRec,GRU4Rec,BERT4Rec \\
        --seeds=3 --profile=quick --output=benchmarks/results/ml-100k-quick

Protocol (every model): leave-one-out by time, full ranking over all items, Recall / NDCG / MRR /
Hit @5/10/20, early stopping on valid NDCG@10, CE loss without negative sampling; seeds 2020,
2021, ... Profiles give every model the same sizes and epoch budget: ``quick`` (CPU), ``full``
(GPU), or a yaml file path (layout: recbole_reg4rec/benchmark/profiles/quick.yaml).

--models entries (comma-separated):
    SASRec                               a RecBole built-in or one of our registered models
    REG4Rec[item_fusion_weight=0]        a variant: config keys changed for this entry only
    REG4Rec[@my_settings.yaml]           a variant read from a yaml file
    faithful=REG4Rec[item_fusion_weight=0]   the same under a short label
--steps=1-4 (or 1,2,4) also evaluates every REG4Rec entry (or those of --steps_models=REG4Rec,REG4Rec_woCRSS)
at each reasoning_steps L, for the NDCG@10-against-L plot: L acts at inference only, so each cell
trains once and its best model is evaluated at every L (rows <label>@L=<L> beside <label>, which
keeps its own setting, L = M by default). --inference='score_mode=id;score_mode=tokens' likewise evaluates each
trained cell of those models under other inference settings (rows REG4Rec[score_mode=id]: the same model ranked
by its item-ID head alone, a control). Any other --key=value flag and --config_files apply to every model.

Each (model, seed) cell runs in its own process and is saved when it finishes; rerunning the
same command skips finished cells and redoes a cell that was killed. Outputs under --output:
runs.csv, summary.md, summary.csv, paired.csv, metrics_bar.png, steps_ndcg10.png (with
--steps), environment.md/json, plus per-cell logs/, cells/, configs/.
Exit status: 0 all cells finished, 1 some cell failed, 2 bad arguments (nothing run).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import recbole_reg4rec  # noqa: F401  (compatibility layer + model registration)
from recbole_reg4rec import registry
from recbole_reg4rec.benchmark.harness import BenchmarkRequest, run_benchmark
from recbole_reg4rec.benchmark.protocol import (
    BenchmarkError,
    expand_inference,
    expand_steps,
    load_profile,
    parse_models,
    parse_inference,
    parse_overrides,
    parse_steps,
    seeds_for,
)


def takes_reasoning_steps(model: str) -> bool:
    """True for our models whose defaults have a ``reasoning_steps`` key (REG4Rec and ablations)."""
    for path in registry._PROPERTY_FILES.get(model, ()):
        if any(line.startswith("reasoning_steps:") for line in Path(path).read_text(encoding="utf-8").splitlines()):
            return True
    return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", "-d", default="ml-100k", help="RecBole dataset name (default ml-100k, shipped with recbole)")
    parser.add_argument("--models", "-m", required=True, help="comma-separated model entries (see above)")
    parser.add_argument("--seeds", default="3", help="number of seeds: 2020, 2021, ... (default 3)")
    parser.add_argument("--profile", default="quick", help="quick (CPU), full (GPU) or a profile yaml path")
    parser.add_argument("--output", "-o", default=None, help="output folder (default benchmarks/results/<dataset>-<profile>)")
    parser.add_argument("--steps", default=None, help="reasoning steps L to sweep, e.g. 1-4 or 1,2,4")
    parser.add_argument("--steps_models", default="REG4Rec",
                        help="models whose entries --steps / --inference evaluate again (default REG4Rec)")
    parser.add_argument("--inference", default=None,
                        help="inference settings to evaluate each trained --steps_models cell under as well, ';' between "
                             "variants, e.g. 'score_mode=id;score_mode=tokens' (rows REG4Rec[score_mode=id] ...)")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files applied to every model")
    parser.add_argument("--keep_checkpoints", action="store_true", help="keep each cell's best-model checkpoint under <output>/saved")
    parser.add_argument("--report_only", action="store_true",
                        help="only (re)write the tables and plots from the cells finished so far; run nothing")
    return parser


def make_request(argv: Optional[List[str]] = None) -> BenchmarkRequest:
    """Validate the command line; raises :class:`BenchmarkError` before anything runs."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = build_parser().parse_known_args(argv)
    overrides = parse_overrides(extra)
    try:
        n_seeds = int(args.seeds)
    except ValueError:
        raise BenchmarkError(f"--seeds must be a positive integer (number of seeds), got {args.seeds!r}.") from None
    seeds = seeds_for(n_seeds)
    profile = load_profile(args.profile)
    specs = parse_models(args.models, registry.get_model)
    steps = parse_steps(args.steps)
    if steps:
        stepped = {m.strip() for m in args.steps_models.split(",") if m.strip()}
        no_steps = sorted(m for m in stepped if not takes_reasoning_steps(m))
        if no_steps:
            raise BenchmarkError(f"--steps_models: {', '.join(no_steps)} has no reasoning_steps setting.")
        if not any(s.model in stepped for s in specs):
            raise BenchmarkError(f"--steps needs a model of --steps_models ({', '.join(sorted(stepped))}) in --models.")
        specs = expand_steps(specs, steps, lambda model: model in stepped)
    variants = parse_inference(args.inference)
    if variants:
        chosen = {m.strip() for m in args.steps_models.split(",") if m.strip()}
        if not any(s.model in chosen for s in specs):
            raise BenchmarkError(f"--inference needs a model of --steps_models ({', '.join(sorted(chosen))}) in --models.")
        specs = expand_inference(specs, variants, lambda model: model in chosen)
    config_files = [Path(p).resolve() for p in (args.config_files.split() if args.config_files else [])]
    missing = [str(p) for p in config_files if not p.is_file()]
    if missing:
        raise BenchmarkError(f"--config_files not found: {', '.join(missing)}")
    output = Path(args.output or f"benchmarks/results/{args.dataset}-{profile.name}").resolve()
    return BenchmarkRequest(
        dataset=args.dataset,
        specs=specs,
        seeds=seeds,
        profile=profile,
        output=output,
        config_files=config_files,
        overrides=overrides,
        ours=frozenset(registry.registered_models()),
        keep_checkpoints=args.keep_checkpoints,
        report_only=args.report_only,
        command=shlex.join(["python", "run_benchmark.py", *argv]),
    )


def main(argv: Optional[List[str]] = None) -> int:
    try:
        request = make_request(argv)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outcome = run_benchmark(request)
    return 1 if outcome.failed and not request.report_only else 0


if __name__ == "__main__":
    sys.exit(main())
