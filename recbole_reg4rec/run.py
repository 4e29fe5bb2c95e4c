"""The run recipe: how every entry point of this package sets up a RecBole run.

RecBole's ``run_recbole`` writes the recipe inline; here it is written once and called by
``run_recbole.py`` (:mod:`.quick_start`), the benchmark's cells (:mod:`.benchmark.runner`), the
Ray Tune trials (:mod:`.tuning.trainable`), the tokenizer tool and the studies
(:mod:`.studies`)::

    config = make_config(model, dataset, config_file_list, config_dict)   # no sys.argv parsing
    start_logging(config)
    run = prepare_run(config)     # seed -> dataset -> loaders -> seed -> model -> trainer
    run.trainer.fit(run.train_data, run.valid_data)

Command-line ``--key=value`` overrides are read by :func:`parse_overrides`, with RecBole's own
value grammar (:func:`parse_value`), and handed to ``Config`` as ``config_dict``: RecBole's
``Config`` never reads ``sys.argv`` in this package (:func:`make_config` is the one guard).
"""

from __future__ import annotations

import ast
import contextlib
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional


class OverrideError(ValueError):
    """A command-line argument that is not a ``--key=value`` config override."""


def parse_value(text: str) -> Any:
    """A command-line value typed as RecBole types it (``Config._convert_config_dict``).

    Python literals (``5``, ``1e-3``, ``[5, 10]``, ``{'hit': 1.0}``, ``None``, ``True``) become
    those values, ``true`` / ``false`` in any case become booleans, anything else stays a string.
    RecBole evaluates the text with ``eval``; :func:`ast.literal_eval` gives the same values for
    literals without running code. One addition: a list or mapping that is not a Python literal
    but valid yaml flow (``{inter: [user_id, item_id]}``, as in a config file) is read as yaml,
    where RecBole would keep a string its own config check then refuses.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.strip().startswith(("{", "[")):
            import yaml

            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError:
                return text
            return loaded if isinstance(loaded, (dict, list)) else text
        return text


def parse_overrides(args: Iterable[str]) -> Dict[str, Any]:
    """``["--epochs=5", "--topk=[5,10]"]`` -> ``{"epochs": 5, "topk": [5, 10]}``.

    Raises:
        OverrideError: for an argument that is not ``--key=value``.
    """
    overrides: Dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key:
            raise OverrideError(f"Unrecognised argument {arg!r}: config overrides are written --key=value.")
        overrides[key] = parse_value(value)
    return overrides


@contextlib.contextmanager
def argv_cleared() -> Iterator[None]:
    """RecBole's ``Config`` reads ``--key=value`` from ``sys.argv``; inside this block it sees
    none (our entry points pass overrides explicitly, and Ray / pytest flags are not config)."""
    saved = sys.argv
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = saved


def make_config(model, dataset, config_file_list: Optional[List[str]] = None,
                config_dict: Optional[Mapping[str, Any]] = None):
    """RecBole ``Config`` from files and a dict only (``sys.argv`` is not read)."""
    from recbole.config import Config

    with argv_cleared():
        return Config(model=model, dataset=dataset, config_file_list=config_file_list or None,
                      config_dict=dict(config_dict) if config_dict else None)


def reset_logger() -> None:
    """Drop the handlers RecBole's ``init_logger`` adds, so repeated runs in one process
    (tests, sweeps, benchmarks) do not print every line several times."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
        handler.close()


def start_logging(config, log_file: Optional[str] = None, console: bool = True) -> logging.Logger:
    """RecBole's logging for one run: its log file under ``./log`` and the console.

    Args:
        log_file: also write INFO lines to this file (a benchmark cell's own log).
        console: ``False`` keeps the console quiet (Ray trials: the log file is enough).
    """
    from pathlib import Path

    from recbole.utils import init_logger

    reset_logger()
    init_logger(config)
    logger = logging.getLogger()
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
    if not console:
        for handler in logger.handlers[:]:
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
    return logger


def seed_everything(config, offset: int = 0) -> None:
    """RecBole's ``init_seed`` with the config's seed (plus ``offset``, e.g. the DDP rank)."""
    from recbole.utils import init_seed

    init_seed(config["seed"] + offset, config["reproducibility"])


def load_data(config):
    """``(dataset, train_data, valid_data, test_data)`` of ``config``: RecBole's dataset and its
    three dataloaders (the RNG is seeded with the config's seed first)."""
    from recbole.data import create_dataset, data_preparation

    seed_everything(config)
    dataset = create_dataset(config)
    logging.getLogger().info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return dataset, train_data, valid_data, test_data


def build_model(config, train_data):
    """``(model, seconds)``: the config's model on ``train_data``'s dataset, on the config's
    device, built right after reseeding (seed + rank), as RecBole does. The seconds include
    e.g. REG4Rec's semantic-ID tokenizer."""
    from recbole.utils import get_model

    seed_everything(config, offset=config["local_rank"])
    start = time.perf_counter()
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return model, time.perf_counter() - start


def build_trainer(config, model):
    """The trainer RecBole (or our registry) pairs with the config's model."""
    from recbole.utils import get_trainer

    return get_trainer(config["MODEL_TYPE"], config["model"])(config, model)


@dataclass
class Run:
    """Everything a run is made of, ready for ``trainer.fit``."""

    config: Any
    dataset: Any
    train_data: Any
    valid_data: Any
    test_data: Any
    model: Any
    trainer: Any
    model_init_s: float = 0.0


def prepare_run(config, data=None) -> Run:
    """The recipe: seed -> dataset -> loaders -> seed -> model -> trainer.

    Args:
        data: the result of :func:`load_data` for an equal dataset config, to reuse across
            several runs (e.g. the alignment variants of one study); loaded when ``None``.
    """
    dataset, train_data, valid_data, test_data = data if data is not None else load_data(config)
    model, model_init_s = build_model(config, train_data)
    logging.getLogger().info(model)
    trainer = build_trainer(config, model)
    return Run(config, dataset, train_data, valid_data, test_data, model, trainer, model_init_s)


def metrics_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """Metrics as a small text table: one row per metric, one column per result.

    >>> print(metrics_table({"valid": {"ndcg@10": 0.05}, "test": {"ndcg@10": 0.04}}))
    metric    valid   test
    ndcg@10  0.0500 0.0400
    """
    columns = [name for name, result in results.items() if result]
    names = list(dict.fromkeys(k for name in columns for k in results[name]))
    width = max([len("metric")] + [len(n) for n in names])
    cells = {c: max(len(c), 6) for c in columns}
    lines = ["metric".ljust(width) + "".join(f" {c:>{cells[c]}}" for c in columns)]
    for name in names:
        row = "".join(
            f" {float(results[c][name]):>{cells[c]}.4f}" if name in results[c] else " " * (cells[c] + 1)
            for c in columns
        )
        lines.append(name.ljust(width) + row)
    return "\n".join(lines)
