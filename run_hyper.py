"""Hyper-parameter sweep of a RecBole model (ours or built-in) on Ray Tune.

    python run_hyper.py --model=SASRec --dataset=ml-100k --params_file=search_spaces/sasrec.hyper \\
        --config_files=search_spaces/base.yaml --num_samples=8 --output=sweeps/sasrec
    python run_hyper.py --model=REG4Rec --params_file=search_spaces/reg4rec.hyper --gpus_per_trial=1 \\
        --address=10.0.0.5:6379 --output=/shared/sweeps/reg4rec      # an existing Ray cluster
    python run_hyper.py ... --epochs=20 --train_batch_size=1024      # --key=value: config overrides

The params file uses RecBole's format, one ``<key> <distribution> <arguments>`` per line
(choice, grid, uniform, quniform, loguniform, qloguniform, randint, qrandint; loguniform bounds
are natural logs, as in RecBole). Trials are selected on the validation metric
(``valid_metric``), reported after every evaluation so ASHA stops bad trials early. Output:
``results.csv``, ``results.md`` (all trials, failed ones with their error), ``best_config.yaml``
(use it with ``run_recbole.py --config_files``) and Ray's trial folders in ``ray_results/``.

With --address, every node of the cluster needs this package installed and the data folder
at the same path, and --output must be on storage all nodes share (Ray Tune's requirement).

Exit status: 0 when the best trial completed, 1 when no trial completed, 2 for bad input
(found before any trial starts).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--model", "-m", default="REG4Rec", help="model name (ours or RecBole's)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", default=None, help="space-separated config yaml files")
    parser.add_argument("--params_file", required=True, help="search space in RecBole's params-file format")
    parser.add_argument("--num_samples", type=int, default=1, help="trials to sample (each grid point this often)")
    parser.add_argument("--scheduler", default="asha", choices=("asha", "fifo", "none"),
                        help="asha: stop bad trials early on the validation metric; fifo/none: run all to the end")
    parser.add_argument("--grace_period", type=int, default=1, help="ASHA: evaluations before a trial may be stopped")
    parser.add_argument("--reduction_factor", type=int, default=2, help="ASHA reduction factor")
    parser.add_argument("--cpus_per_trial", type=float, default=1, help="CPUs reserved per trial")
    parser.add_argument("--gpus_per_trial", type=float, default=0, help="GPUs per trial (fractions share a GPU)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (host:port, ray://host:port or auto); default: a local Ray")
    parser.add_argument("--num_cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--ray_temp_dir", default=None, help="temp folder of the local Ray")
    parser.add_argument("--output", default="hyper_results", help="folder for the result table and best config")
    args, overrides = parser.parse_known_args(argv)
    args.overrides = overrides  # --key=value config overrides, typed once the package is imported
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import recbole_reg4rec  # noqa: F401  (compatibility layer + model registration; after --help)
    from recbole_reg4rec.run import OverrideError, parse_overrides
    from recbole_reg4rec.tuning import SweepError, SweepSettings, prepare, run_sweep
    from recbole_reg4rec.tuning.sweep import markdown

    try:
        overrides = parse_overrides(args.overrides)
    except OverrideError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # every other flag has the name of the SweepSettings field it sets
    flags = {f.name: getattr(args, f.name) for f in fields(SweepSettings) if f.name not in ("config_files", "overrides")}
    settings = SweepSettings(
        **flags, config_files=args.config_files.split() if args.config_files else [], overrides=overrides
    )
    try:
        prepared = prepare(settings)
        print(f"Sweep of {settings.model} on {settings.dataset}, selecting on validation "
              f"{prepared.valid_metric} ({prepared.mode}). Search space:")
        for spec in prepared.specs:
            print(f"  {spec.describe()}")
        result = run_sweep(settings, prepared)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = result.table
    print(markdown(table, result.prepared))
    failed = int((table["status"] == "failed").sum()) if not table.empty else 0
    print(f"\n{len(table)} trials, {failed} failed. Table: {result.files['csv']} and {result.files['markdown']}")
    if result.best is None:
        print("error: no trial completed; see the error column and the trial logs under "
              f"{settings.output}/ray_results", file=sys.stderr)
        return 1
    print(f"Best trial {result.best['trial']}: config {result.files['best_config']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
