"""Train and evaluate a model with RecBole, REG4Rec and our other models included.

    python run_recbole.py --model=REG4Rec --dataset=ml-100k
    python run_recbole.py --model=SASRec --config_files="a.yaml b.yaml" --epochs=5
    python run_recbole.py --model=REG4Rec --nproc=2            # RecBole's DDP (gloo on CPU)
    python run_recbole.py --model=REG4Rec --resume=saved/REG4Rec-<time>-<run id>.pth   # continue a killed run

Flags are RecBole's own run_recbole.py flags; any other ``--key=value`` overrides that config
key (values typed as RecBole types them: 5, 1e-3, [5,10], True). Our models' default properties
load before your config files. The output ends with the metrics as a table, the best model's
checkpoint and the log file.
"""

import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", type=str, default="REG4Rec", help="name of the model")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="name of the dataset")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="number of processes (DDP)")
    parser.add_argument("--ip", type=str, default="localhost", help="IP of the master node")
    parser.add_argument("--port", type=str, default="5678", help="port of the master node")
    parser.add_argument("--world_size", type=int, default=-1, help="total number of jobs")
    parser.add_argument("--group_offset", type=int, default=0, help="global rank offset of this group")
    parser.add_argument(
        "--resume", type=str, default=None,
        help="checkpoint of a killed run to continue (saved/<Model>-<time>-<run id>.pth, saved/last/... or the run "
             "id; the newer is used); give the same model, dataset, config files and flags as the original run",
    )
    args, overrides = parser.parse_known_args(argv)
    args.overrides = overrides  # --key=value config overrides: RecBole's Config reads them from sys.argv
    return args


def main(argv=None):
    args = parse_args(argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    import recbole_reg4rec  # noqa: F401  (compatibility layer + model registration; after --help)
    from recbole_reg4rec.compat.checkpoints import CorruptCheckpointError, UnsafeCheckpointError
    from recbole_reg4rec.quick_start import run
    from recbole_reg4rec.run import metrics_table, parse_overrides

    try:
        parse_overrides(args.overrides)  # a stray argument is an error here, not a warning inside RecBole
        launch = {name: getattr(args, name) for name in ("nproc", "world_size", "ip", "port", "group_offset", "resume")}
        result = run(args.model, args.dataset, config_file_list=config_file_list, **launch)
    except (ValueError, FileNotFoundError, CorruptCheckpointError, UnsafeCheckpointError) as err:
        # Configuration and data errors carry an actionable message; a traceback adds nothing.
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result:  # None in a DDP worker group that reported nothing
        print(metrics_table({"best valid": result["best_valid_result"], "test": result["test_result"]}))
        for name in ("checkpoint", "log_file"):
            if result.get(name):
                print(f"{name.replace('_', ' ')}: {result[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
