"""Our tools, one command: ``python reg4rec.py <command> [flags]`` (``<command> --help`` for each).

    benchmark          our models and RecBole's built-ins side by side, one protocol, several seeds
    tokenize           the semantic-ID tokenizer alone on a dataset, with its diagnostics
    explain            the reasoning paths behind a saved REG4Rec model's recommendations
    pars-sweep         alignment-stage (PARS / MSRA) variants from one stage-1 model
    pars-sweep-report  across-seed table of pars-sweep runs, selection on validation
    steps-curve        NDCG@10 against the reasoning steps L, from saved checkpoints
    memory             resident memory after every epoch of a long run (leak check)
    scale              evaluation / training / tokenizer cost against the catalogue size N
    scale-breakdown    where REG4Rec's evaluation and training time goes at one N, beside SASRec
    inference-study    inference settings of trained checkpoints chosen on validation, with controls

Training and hyper-parameter sweeps keep RecBole's names: ``run_recbole.py`` and ``run_hyper.py``.
Tools print their result only; ``--verbose`` adds RecBole's log (config dump included).
Arguments are parsed before anything heavy is imported, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

#: command -> (module implementing it, function taking the parsed arguments, one-line help)
COMMANDS = {
    "benchmark": ("recbole_reg4rec.benchmark.request", "benchmark_command",
                  "our models and RecBole's built-ins side by side, one protocol, several seeds"),
    "tokenize": ("recbole_reg4rec.tokenizer.command", "tokenize_command",
                 "the semantic-ID tokenizer alone on a dataset, with its diagnostics"),
    "explain": ("recbole_reg4rec.explain", "explain_command",
                "the reasoning paths behind a saved REG4Rec model's recommendations"),
    "pars-sweep": ("recbole_reg4rec.studies.pars_sweep", "sweep_command",
                   "alignment-stage variants from one stage-1 model, per-epoch valid/test NDCG@10"),
    "pars-sweep-report": ("recbole_reg4rec.studies.pars_sweep", "report_command",
                          "across-seed table of pars-sweep runs, selection on validation"),
    "steps-curve": ("recbole_reg4rec.studies.steps_curve", "steps_curve_command",
                    "NDCG@10 against the reasoning steps L, from saved checkpoints"),
    "memory": ("recbole_reg4rec.studies.memory", "memory_command",
               "resident memory after every epoch of a long run (leak check)"),
    "inference-study": ("recbole_reg4rec.studies.inference", "inference_study_command",
                        "inference settings of trained checkpoints chosen on validation, beside their controls"),
    "scale": ("recbole_reg4rec.benchmark.scale", "scale_command",
              "evaluation / training / tokenizer cost of REG4Rec, TIGER, SASRec against the catalogue size N"),
    "scale-breakdown": ("recbole_reg4rec.benchmark.scale_breakdown", "breakdown_command",
                        "where REG4Rec's evaluation and training time goes at one N, beside SASRec"),
}

#: commands whose unknown ``--key=value`` flags are config overrides (the others refuse them)
TAKES_OVERRIDES = frozenset({"benchmark", "tokenize", "inference-study"})

_RAW = argparse.RawDescriptionHelpFormatter

BENCHMARK_HELP = """\
Benchmark our models and RecBole's built-ins side by side, under one protocol, over seeds.

    python reg4rec.py benchmark --dataset=ml-100k --models=REG4Rec,SASRec,GRU4Rec,BERT4Rec \\
        --seeds=3 --profile=quick --output=runs/ml-100k-quick

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

TOKENIZE_HELP = """\
Run a semantic-ID tokenizer alone on any RecBole dataset and print its diagnostics.

    python reg4rec.py tokenize --dataset=ml-100k
    python reg4rec.py tokenize --dataset=ml-100k --tokenizer=rq --n_codebooks=3 --codebook_size=256
    python reg4rec.py tokenize --dataset=ml-100k --mpq_orth_weight=0 --tokenizer_cache_dir=""
    python reg4rec.py tokenize --clean --max_age_days=30 --max_size_mb=500   # tidy the token cache

The dataset is split as the chosen sequential --model would split it (default SASRec, with our
properties), and only the training split feeds collaborative features. When the dataset has a
.item file and load_col does not mention it, all its columns are loaded (and the time field of
.inter, which a time-ordered split needs). Any other --key=value overrides a config key.
"""

EXPLAIN_HELP = """\
Explain REG4Rec recommendations from a saved checkpoint.

    python reg4rec.py explain --model_file saved/REG4Rec-Nov-26-2026_03-00-00.pth --users 1 42 --topk 5
    python reg4rec.py explain --model_file ... --users 1 --json > explanation.json

For every user: the top-K items, the reasoning path that reached each one (codebook order,
token per step, CRSS confidence, log-probability, reflection score), how many candidates CORP
pruned or merged, and a description of every token from the items that share it.
"""

PARS_SWEEP_HELP = """\
Alignment-stage (PARS / MSRA) variants from one stage-1 model: which settings make stage 2
improve on the model it starts from?

Stage 1 is trained once (or taken from --stage1); every variant then runs the alignment stage
from those same weights, and after each alignment epoch the study records the validation
NDCG@10 (what selection may use) and, for the report only, the test NDCG@10 of the current
weights, beside the epoch's reward statistics.

    python reg4rec.py pars-sweep --output runs/pars-sweep --pars_epochs 3 \\
        --variant default \\
        --variant tau0.5 pars_token_temperature=0.5 \\
        --variant H0 msra_horizon=0 \\
        --set MAX_ITEM_LIST_LENGTH=20 n_layers=1 inner_size=128 train_batch_size=512 epochs=10

Writes pars_sweep.csv (variant, epoch, valid/test NDCG@10 and Recall@10, reward means, KL,
seconds) and prints a table with the stage-1 row first. On a lent GPU, scripts/gpu_pars_sweep.sh
runs 3 seeds x 9 variants and the across-seed report.
"""

PARS_SWEEP_REPORT_HELP = """\
Across-seed summary of pars-sweep runs: does an alignment variant improve on the stage-1 model
it starts from, when the epoch is chosen the way the trainer chooses it?

Per seed and variant the selected model is the epoch with the best validation NDCG@10, the
stage-1 model included and winning ties. The table gives, as mean ± std over seeds, the selected
model's validation and test NDCG@10 / Recall@10, its test change against stage 1, the number of
seeds in which stage 2 was selected, and the mean test NDCG@10 after each alignment epoch.

    python reg4rec.py pars-sweep-report runs/seed*/pars_sweep.csv --output summary.md
"""

STEPS_CURVE_HELP = """\
NDCG@10 against the number of reasoning steps L, from trained REG4Rec checkpoints.

L acts at inference only: the beam search emits L tokens and completes the items with the
remaining codebooks' log-probabilities, so one trained model per seed is evaluated at every L
(`benchmark --steps` does the same right after training each cell).

    python reg4rec.py steps-curve --model_files saved/REG4Rec-A.pth saved/REG4Rec-B.pth \\
        --steps 1-4 --output runs/steps

Writes steps.csv (file, seed, L, valid/test NDCG@10 and Recall@10), steps_ndcg10.png (test
NDCG@10 mean ± std over the files against L) and prints the table.
"""

MEMORY_HELP = """\
Long-run memory check: train a model for many epochs and record memory after every epoch.

A leak shows as resident memory that keeps growing epoch after epoch once the first epochs have
allocated their caches.

    python reg4rec.py memory --epochs 30 --pars_epochs 5 --output runs/memory

Writes memory.csv (epoch, stage, seconds, RSS MB, peak RSS MB), memory.png and prints a summary
including the RSS drift over the second half of each stage.
"""


def _common() -> argparse.ArgumentParser:
    """Flags every command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also print RecBole's log (config dump, dataset, epochs); default: the result only")
    return common


def _subparser(sub, name: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=COMMANDS[name][2], description=description, formatter_class=_RAW,
                          parents=[_common()])


def _add_benchmark(sub) -> None:
    p = _subparser(sub, "benchmark", BENCHMARK_HELP)
    p.add_argument("--dataset", "-d", default="ml-100k", help="RecBole dataset name (default ml-100k, shipped with recbole)")
    p.add_argument("--models", "-m", required=True, help="comma-separated model entries (see above)")
    p.add_argument("--seeds", default="3", help="number of seeds: 2020, 2021, ... (default 3)")
    p.add_argument("--profile", default="quick", help="quick (CPU), full (GPU) or a profile yaml path")
    p.add_argument("--output", "-o", default=None, help="output folder (default runs/<dataset>-<profile>)")
    p.add_argument("--steps", default=None, help="reasoning steps L to sweep, e.g. 1-4 or 1,2,4")
    p.add_argument("--steps_models", default="REG4Rec",
                   help="models whose entries --steps / --inference evaluate again (default REG4Rec)")
    p.add_argument("--inference", default=None,
                   help="inference settings to evaluate each trained --steps_models cell under as well, ';' between "
                        "variants, e.g. 'score_mode=id;score_mode=tokens' (rows REG4Rec[score_mode=id] ...)")
    p.add_argument("--config_files", default=None, help="space-separated yaml files applied to every model")
    p.add_argument("--keep_checkpoints", action="store_true", help="keep each cell's best-model checkpoint under <output>/saved/<cell>")
    p.add_argument("--jobs", type=int, default=1, help="cells run at the same time, each in its own process (default 1; "
                   "more where one cell leaves cores or a GPU idle; set OMP_NUM_THREADS so they do not oversubscribe)")
    p.add_argument("--report_only", action="store_true",
                   help="only (re)write the tables and plots from the cells finished so far; run nothing")


def _add_tokenize(sub) -> None:
    p = _subparser(sub, "tokenize", TOKENIZE_HELP)
    p.add_argument("--dataset", "-d", default="ml-100k", help="RecBole dataset name")
    p.add_argument("--model", "-m", default="SASRec", help="sequential model whose split to use")
    p.add_argument("--config_files", default=None, help="space-separated yaml files")
    p.add_argument("--clean", action="store_true", help="tidy tokenizer_cache_dir instead of tokenizing: "
                   "delete entries beyond --max_age_days / --max_size_mb (all without a limit) and "
                   "temporaries of killed writers")
    p.add_argument("--max_age_days", type=float, default=None, help="with --clean: unused for longer")
    p.add_argument("--max_size_mb", type=float, default=None, help="with --clean: keep at most this much")


def _add_explain(sub) -> None:
    p = _subparser(sub, "explain", EXPLAIN_HELP)
    p.add_argument("--model_file", required=True, help="REG4Rec checkpoint (.pth)")
    p.add_argument("--users", nargs="+", required=True, help="external user ids")
    p.add_argument("--topk", type=int, default=10, help="items per user")
    p.add_argument("--split", choices=("test", "valid"), default="test", help="which history to use")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _add_pars_sweep(sub) -> None:
    p = _subparser(sub, "pars-sweep", PARS_SWEEP_HELP)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--stage1", help="REG4Rec checkpoint to start from (default: train stage 1 first)")
    p.add_argument("--pars_epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--output", default="runs/pars-sweep")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings of every run")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME [KEY=VALUE ...]",
                   help="an alignment variant: a name and its settings (repeat the flag)")


def _add_pars_sweep_report(sub) -> None:
    p = _subparser(sub, "pars-sweep-report", PARS_SWEEP_REPORT_HELP)
    p.add_argument("csv", nargs="+", help="pars_sweep.csv files, one per seed")
    p.add_argument("--output", help="also write the markdown table here")


def _add_steps_curve(sub) -> None:
    p = _subparser(sub, "steps-curve", STEPS_CURVE_HELP)
    p.add_argument("--model_files", nargs="+", required=True, help="REG4Rec checkpoints (one per seed)")
    p.add_argument("--steps", default="1-4", help="L values, e.g. 1-4 or 1,2,4 (each between 1 and M)")
    p.add_argument("--output", default="runs/steps")
    p.add_argument("--fusion_weight", type=float, default=None,
                   help="evaluate with this item_fusion_weight instead of the trained one (0 = token paths only)")


def _add_memory(sub) -> None:
    p = _subparser(sub, "memory", MEMORY_HELP)
    p.add_argument("--model", default="REG4Rec")
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--epochs", type=int, default=30, help="stage-1 epochs (early stopping off)")
    p.add_argument("--pars_epochs", type=int, default=10, help="stage-2 epochs")
    p.add_argument("--output", default="runs/memory")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra config overrides")
    p.add_argument("--from_csv", help="only summarise and re-plot an earlier run's memory.csv")


SCALE_HELP = """\
Evaluation, training and tokenizer cost of REG4Rec, TIGER and SASRec against the catalogue size N,
on synthetic datasets, in one process with one torch thread; models measured interleaved (median
over rounds). Writes scale.csv, scale.md and scale.png (log-log) into --output.

    python reg4rec.py scale --items 2000 20000 100000 --output results/scale
"""


def _add_scale(sub) -> None:
    p = _subparser(sub, "scale", SCALE_HELP)
    p.add_argument("--items", type=int, nargs="+", default=[2000, 20000, 100000], help="catalogue sizes N")
    p.add_argument("--models", nargs="+", default=["SASRec", "REG4Rec", "TIGER"], choices=["SASRec", "REG4Rec", "TIGER"])
    p.add_argument("--users", type=int, default=3000, help="synthetic users")
    p.add_argument("--per_user", type=int, default=30, help="interactions per user")
    p.add_argument("--eval_users", type=int, default=500, help="test users scored over all items")
    p.add_argument("--rounds", type=int, default=3, help="evaluation rounds (median reported)")
    p.add_argument("--train_batches", type=int, default=10, help="training batches timed per model (0 = none)")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every model")
    p.add_argument("--output", default="runs/scale")


SCALE_BREAKDOWN_HELP = """\
CPU-time split of one point of the scale benchmark (synthetic catalogue of N items, untrained models, one
torch thread, medians over rounds): REG4Rec's decoder steps / candidate bookkeeping / rest in a full-ranking
evaluation, and encoder / order planning / decoder passes / backward in a training batch, beside SASRec.

    python reg4rec.py scale-breakdown --items 2000 --rounds 5
    python reg4rec.py scale-breakdown --items 2000 --set beam_size=30     # a narrower beam
"""


def _add_scale_breakdown(sub) -> None:
    p = _subparser(sub, "scale-breakdown", SCALE_BREAKDOWN_HELP)
    p.add_argument("--items", type=int, default=2000, help="catalogue size N")
    p.add_argument("--users", type=int, default=3000, help="synthetic users")
    p.add_argument("--eval_users", type=int, default=500, help="test users scored over all items")
    p.add_argument("--rounds", type=int, default=5, help="evaluation rounds (median)")
    p.add_argument("--batches", type=int, default=10, help="training batches (median)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="REG4Rec config overrides, e.g. beam_size=30 (SASRec keeps its defaults)")


INFERENCE_STUDY_HELP = """\
Inference settings (score mode, ID-head weight, reflection weight, reasoning steps L) act at inference
only, so one trained model per seed serves the study: the auto selection runs on the validation split,
every setting it tried is also evaluated on test (reported, never chosen), beside the controls of the
same weights (ID head alone, the old fixed default, token scores alone) and the inference-only
ablations (no prior steering, plain beam). Writes trials.csv and summary.md into --output.

    python reg4rec.py inference-study --model_files saved/REG4Rec-A.pth --output runs/inference
    python reg4rec.py inference-study --seeds 3 --train_output runs/stage1 --output runs/inference

With --seeds, unknown --key=value flags are passed to the benchmark that trains the checkpoints.
"""


def _add_inference_study(sub) -> None:
    p = _subparser(sub, "inference-study", INFERENCE_STUDY_HELP)
    p.add_argument("--model_files", nargs="*", default=[], help="trained REG4Rec checkpoints (one per seed)")
    p.add_argument("--seeds", type=int, default=0, help="train this many stage-1 checkpoints first (seeds 2020..)")
    p.add_argument("--train_output", default="runs/stage1-checkpoints")
    p.add_argument("--profile", default="quick")
    p.add_argument("--output", default="runs/inference-study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reg4rec.py", description=__doc__, formatter_class=_RAW)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for add in (_add_benchmark, _add_tokenize, _add_explain, _add_pars_sweep, _add_pars_sweep_report,
                _add_steps_curve, _add_memory, _add_scale, _add_scale_breakdown, _add_inference_study):
        add(sub)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parsed arguments; ``args.overrides`` holds the raw ``--key=value`` flags of the commands
    that take config overrides (typed later by :func:`recbole_reg4rec.run.parse_overrides`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    args.argv = argv
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import recbole_reg4rec  # noqa: F401  (compatibility layer + model registration; after --help)

    module, function, _ = COMMANDS[args.command]
    return getattr(importlib.import_module(module), function)(args)


if __name__ == "__main__":
    sys.exit(main())
