"""Run a semantic-ID tokenizer alone on any RecBole dataset and print its diagnostics.

Examples::

    python run_tokenizer.py --dataset=ml-100k
    python run_tokenizer.py --dataset=ml-100k --tokenizer=rq --n_codebooks=3 --codebook_size=256
    python run_tokenizer.py --dataset=ml-100k --mpq_orth_weight=0 --tokenizer_cache_dir=""
    python run_tokenizer.py --clean --max_age_days=30 --max_size_mb=500   # tidy the token cache

The dataset is split as the chosen sequential ``--model`` would split it (default SASRec, with
our properties), and only the training split feeds collaborative features. When the dataset
has a ``.item`` file and ``load_col`` does not mention it, all its columns are loaded (and the
time field of ``.inter``, which a time-ordered split needs).
Any other ``--key=value`` overrides a config key, as with ``run_recbole.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def _header_fields(config, suffix: str) -> Optional[List[str]]:
    """Field names in the header of ``<data_path>/<dataset>.<suffix>``, or None if there is no file."""
    path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
    if not os.path.isfile(path):
        return None
    with open(path, encoding=config["encoding"] or "utf-8") as f:
        header = f.readline().rstrip("\r\n").split(config["field_separator"] or "\t")
    return [h.split(":")[0] for h in header if h]


def _complete_load_col(config) -> None:
    """Load what the tokenizer can use even where ``load_col`` keeps RecBole's bare default:
    every column of the ``.item`` file, and the time field for a time-ordered split."""
    load_col = config["load_col"]
    if not isinstance(load_col, dict):
        return  # None: RecBole loads every column already
    load_col = {k: list(v) for k, v in load_col.items()}
    item_fields = _header_fields(config, "item")
    if item_fields and "item" not in load_col:
        load_col["item"] = item_fields
    inter_fields = _header_fields(config, "inter") or []
    time_field = config["TIME_FIELD"]
    if "inter" in load_col and time_field in inter_fields and time_field not in load_col["inter"]:
        load_col["inter"].append(time_field)
    config["load_col"] = load_col


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", "-d", default="ml-100k", help="RecBole dataset name")
    parser.add_argument("--model", "-m", default="SASRec", help="sequential model whose split to use")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--clean", action="store_true", help="tidy tokenizer_cache_dir instead of tokenizing: "
                        "delete entries beyond --max_age_days / --max_size_mb (all without a limit) and "
                        "temporaries of killed writers")
    parser.add_argument("--max_age_days", type=float, default=None, help="with --clean: unused for longer")
    parser.add_argument("--max_size_mb", type=float, default=None, help="with --clean: keep at most this much")
    args, _ = parser.parse_known_args(argv)

    import recbole_reg4rec  # noqa: F401  (compatibility layer + registry)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed
    from recbole_reg4rec.compat.atomic_files import AtomicFileError
    from recbole_reg4rec.registry import property_file
    from recbole_reg4rec.tokenizer import TokenizerConfigError, build_semantic_ids_with_report

    files = [str(property_file("tokenizer.yaml"))]
    if args.config_files:
        files += args.config_files.split()
    try:
        config = Config(model=args.model, dataset=args.dataset, config_file_list=files,
                        config_dict={"train_neg_sample_args": None})
        if args.clean:
            from recbole_reg4rec.tokenizer.cache import clean_cache

            folder = config["tokenizer_cache_dir"]
            print(f"{folder}: {clean_cache(folder, args.max_age_days, args.max_size_mb).summary()}" if folder
                  else "no token cache to clean: tokenizer_cache_dir is empty")
            return 0
        _complete_load_col(config)
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        dataset = create_dataset(config)
        train_data, _, _ = data_preparation(config, dataset)
        sem, report = build_semantic_ids_with_report(config, train_data._dataset)
    except (TokenizerConfigError, AtomicFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.table())  # also in the log; stdout keeps the report whatever the logging setup
    print(f"codes: {tuple(sem.codes.shape)}, codebook sizes {sem.codebook_sizes}, ordered={sem.ordered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
