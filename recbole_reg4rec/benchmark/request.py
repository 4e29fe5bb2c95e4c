"""``reg4rec.py benchmark``: its command line, validated into a :class:`.harness.BenchmarkRequest`.

Everything that can be wrong with the request (unknown model or profile, bad seeds, steps or
flags, missing config files) is found here, before any cell runs, and reported as one line.
"""

from __future__ import annotations

import shlex
import sys
from argparse import Namespace
from pathlib import Path

from .. import registry
from ..run import OverrideError, parse_overrides
from .harness import BenchmarkRequest, run_benchmark
from .protocol import (
    BenchmarkError,
    expand_inference,
    expand_steps,
    load_profile,
    parse_inference,
    parse_models,
    parse_steps,
    seeds_for,
)


def takes_reasoning_steps(model: str) -> bool:
    """True for our models whose defaults have a ``reasoning_steps`` key (REG4Rec and ablations)."""
    for path in registry.model_property_files(model):
        if any(line.startswith("reasoning_steps:") for line in Path(path).read_text(encoding="utf-8").splitlines()):
            return True
    return False


def make_request(args: Namespace) -> BenchmarkRequest:
    """The request ``args`` (parsed by ``reg4rec.py benchmark``) asks for.

    Raises:
        BenchmarkError: for anything wrong with it; nothing has run yet.
    """
    try:
        overrides = parse_overrides(args.overrides)
    except OverrideError as err:
        raise BenchmarkError(str(err)) from None
    try:
        n_seeds = int(args.seeds)
    except ValueError:
        raise BenchmarkError(f"--seeds must be a positive integer (number of seeds), got {args.seeds!r}.") from None
    seeds = seeds_for(n_seeds)
    if args.jobs < 1:
        raise BenchmarkError(f"--jobs must be at least 1 (cells run at the same time), got {args.jobs}.")
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
    output = Path(args.output or f"runs/{args.dataset}-{profile.name}").resolve()
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
        verbose=args.verbose,
        jobs=args.jobs,
        command=shlex.join(["python", "reg4rec.py", *args.argv]),
    )


def benchmark_command(args: Namespace) -> int:
    """Exit status: 0 all cells finished, 1 some cell failed, 2 a bad request (nothing run)."""
    try:
        request = make_request(args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outcome = run_benchmark(request)
    return 1 if outcome.failed and not request.report_only else 0
