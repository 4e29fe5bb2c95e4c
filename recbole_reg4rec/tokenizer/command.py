"""``reg4rec.py tokenize``: a semantic-ID tokenizer alone on any RecBole dataset, with its diagnostics.

The dataset is split as the chosen sequential model would split it, and only the training split
feeds collaborative features. Where ``load_col`` keeps RecBole's bare default, every column of
the ``.item`` file is loaded (and the time field of ``.inter``, which a time-ordered split needs).
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from typing import List, Optional


def _header_fields(config, suffix: str) -> Optional[List[str]]:
    """Field names in the header of ``<data_path>/<dataset>.<suffix>``, or None if there is no file."""
    path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
    if not os.path.isfile(path):
        return None
    with open(path, encoding=config["encoding"] or "utf-8") as f:
        header = f.readline().rstrip("\r\n").split(config["field_separator"] or "\t")
    return [h.split(":")[0] for h in header if h]


def complete_load_col(config) -> None:
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


def tokenize_command(args: Namespace) -> int:
    """Exit status: 0 done, 2 bad settings or data (one line on stderr)."""
    from ..compat.atomic_files import AtomicFileError
    from ..registry import property_file
    from ..run import OverrideError, load_data, make_config, parse_overrides, seed_everything, start_logging
    from . import TokenizerConfigError, build_semantic_ids_with_report

    files = [str(property_file("tokenizer.yaml"))]
    if args.config_files:
        files += args.config_files.split()
    try:
        overrides = parse_overrides(args.overrides)
        quiet = {} if args.verbose else {"state": "WARNING"}
        config = make_config(args.model, args.dataset, files,
                             {"train_neg_sample_args": None, **quiet, **overrides})
        if args.clean:
            from .cache import clean_cache

            folder = config["tokenizer_cache_dir"]
            print(f"{folder}: {clean_cache(folder, args.max_age_days, args.max_size_mb).summary()}" if folder
                  else "no token cache to clean: tokenizer_cache_dir is empty")
            return 0
        complete_load_col(config)
        seed_everything(config)
        start_logging(config)
        _, train_data, _, _ = load_data(config)
        sem, report = build_semantic_ids_with_report(config, train_data._dataset)
    except (OverrideError, TokenizerConfigError, AtomicFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.table())  # also in the log; stdout keeps the report whatever the logging setup
    print(f"codes: {tuple(sem.codes.shape)}, codebook sizes {sem.codebook_sizes}, ordered={sem.ordered}")
    return 0
