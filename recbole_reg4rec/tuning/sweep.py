"""Hyper-parameter sweeps of RecBole models on Ray Tune.

:func:`prepare` checks everything that can be checked before a trial starts (params file,
config keys against a ``Config`` built for the model and dataset, dataset folder, config
files) and raises :class:`SweepError` with an actionable message. :func:`run_sweep` then runs a
``tune.Tuner`` (ASHA on the per-epoch validation score by default), and :func:`write_outputs`
stores, under the output folder:

* ``results.csv`` / ``results.md``: one row per trial (status, tuned values, epochs,
  validation and test metrics, error of a failed trial), best first;
* ``best_config.yaml``: config files + overrides + the best trial's values merged into one
  yaml, usable as ``run_recbole.py --config_files=<output>/best_config.yaml``;
* ``ray_results/``: Ray's own trial folders (RecBole logs and checkpoints of each trial).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .params import ParamsFileError, ParamSpec, check_keys, parse_params_file, search_space
from .trainable import COMPLETED_KEY, SCORE_KEY, TrialSetup, recbole_trainable

SCHEDULERS = ("asha", "fifo", "none")
#: relative paths that every trial should share (resolved against the sweep's working
#: directory, as a plain ``run_recbole`` would): caches that are safe to share across trials
SHARED_PATH_KEYS = ("tokenizer_cache_dir", "dataset_save_path", "dataloaders_save_path")
#: ASHA's max_t, in reports (one per evaluation, plus the final one)
ASHA_MAX_T = 1 << 16


class SweepError(ValueError):
    """Bad input found before any trial started."""


@dataclass
class SweepSettings:
    """What ``run_hyper.py`` accepts (see its ``--help`` for each flag)."""

    # what to tune, and where the results go
    model: str
    dataset: str
    params_file: str
    output: str
    config_files: List[str] = field(default_factory=list)
    overrides: Dict[str, Any] = field(default_factory=dict)
    # how trials are sampled and stopped
    num_samples: int = 1
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2
    # resources: per trial, and the Ray cluster (local when address is None)
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    address: Optional[str] = None
    num_cpus: Optional[int] = None
    ray_temp_dir: Optional[str] = None


@dataclass
class PreparedSweep:
    """Validated inputs of a sweep."""

    settings: SweepSettings
    specs: List[ParamSpec]
    setup: TrialSetup
    valid_metric: str
    mode: str  # "max" or "min"


@dataclass
class SweepResult:
    """Outcome of :func:`run_sweep`."""

    table: Any  # pandas.DataFrame, best first
    best: Optional[Dict[str, Any]]  # row of the best completed trial
    files: Dict[str, str]
    prepared: Optional[PreparedSweep] = None


@contextlib.contextmanager
def _cuda_visible_devices_kept():
    """RecBole's Config writes CUDA_VISIBLE_DEVICES; the sweep's own process keeps its value."""
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda


def _build_config(model, dataset, config_files, config_dict):
    from ..run import make_config

    with _cuda_visible_devices_kept():
        try:
            return make_config(model, dataset, config_files, config_dict)
        except (ValueError, KeyError, TypeError, OSError, ImportError) as err:
            raise SweepError(f"cannot build a RecBole config for {model} on {dataset}: {err}") from None
        except Exception as err:  # e.g. a yaml syntax error in a config file
            raise SweepError(
                f"cannot build a RecBole config for {model} on {dataset}: {type(err).__name__}: {err}"
            ) from None


def _downloadable(dataset: str) -> bool:
    import yaml
    import recbole

    url_file = Path(recbole.__file__).parent / "properties" / "dataset" / "url.yaml"
    try:
        return dataset in (yaml.safe_load(url_file.read_text()) or {})
    except OSError:
        return False


def prepare(settings: SweepSettings) -> PreparedSweep:
    """Validate the sweep's inputs; raise :class:`SweepError` naming the problem and the fix."""
    if settings.scheduler not in SCHEDULERS:
        raise SweepError(f"--scheduler={settings.scheduler!r} is unknown; use one of {', '.join(SCHEDULERS)}.")
    if settings.num_samples < 1:
        raise SweepError(f"--num_samples must be at least 1, got {settings.num_samples}.")
    if settings.cpus_per_trial <= 0 or settings.gpus_per_trial < 0:
        raise SweepError("--cpus_per_trial must be > 0 and --gpus_per_trial >= 0.")
    config_files = [os.path.abspath(f) for f in settings.config_files]
    for f in config_files:
        if not os.path.isfile(f):
            raise SweepError(f"config file {f!r} not found (from --config_files).")
    try:
        specs = parse_params_file(os.path.abspath(settings.params_file))
    except ParamsFileError as err:
        raise SweepError(str(err)) from None

    overrides = dict(settings.overrides)
    # known keys: RecBole's and the model's defaults, the dataset's and the config files' keys
    known = set(_build_config(settings.model, settings.dataset, config_files, {}).final_config_dict)
    config = _build_config(settings.model, settings.dataset, config_files, overrides)
    unknown = [k for k in overrides if k not in known]
    if unknown:
        import difflib

        key = unknown[0]
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise SweepError(
            f"--{key}: not a config key of {settings.model} on {settings.dataset}.{hint} "
            f"If a custom component reads it, declare its default in a yaml passed with --config_files."
        )
    try:
        check_keys(specs, known, settings.model, settings.dataset)
    except ParamsFileError as err:
        raise SweepError(str(err)) from None

    # Trials run in their own working directory: pin the data folder to an absolute path.
    data_folder = os.path.abspath(config["data_path"])
    if settings.dataset != "ml-100k":
        overrides["data_path"] = os.path.dirname(data_folder.rstrip(os.sep))
    if not os.path.isdir(data_folder) and not _downloadable(settings.dataset):
        raise SweepError(
            f"dataset {settings.dataset!r} not found: {data_folder!r} does not exist. Set data_path "
            f"(in a --config_files yaml or --data_path=...) to the folder that holds {settings.dataset}/."
        )

    for key in SHARED_PATH_KEYS:
        value = config[key]
        if isinstance(value, str) and value and not os.path.isabs(value):
            overrides[key] = os.path.abspath(value)

    valid_metric = str(config["valid_metric"])
    mode = "max" if config["valid_metric_bigger"] else "min"
    setup = TrialSetup(
        model=settings.model,
        dataset=settings.dataset,
        config_files=config_files,
        config_dict=overrides,
        use_gpu=settings.gpus_per_trial > 0,
        cpus=settings.cpus_per_trial,
    )
    return PreparedSweep(settings, specs, setup, valid_metric, mode)


def check_address(address: Optional[str], timeout: float = 5.0) -> None:
    """Fail fast when ``--address`` (``host:port`` or ``ray://host:port``) does not answer.

    ``None``/``local`` starts a local cluster and ``auto`` lets Ray find a running one.
    """
    if address in (None, "", "local", "auto"):
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SweepError(f"--address={address!r} is not host:port (e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise SweepError(
            f"cannot reach the Ray cluster at {address!r} ({err}). Start it (`ray start --head`), "
            f"check host and port, or leave out --address to run on a local Ray."
        ) from None


@contextlib.contextmanager
def ray_session(settings: SweepSettings):
    """Join ``settings.address`` or start a local Ray; reuse an already initialized one."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs = dict(include_dashboard=False, log_to_driver=True)
    if settings.address not in (None, "", "local"):
        kwargs["address"] = settings.address
    else:
        if settings.num_cpus:
            kwargs["num_cpus"] = settings.num_cpus
        if settings.ray_temp_dir:
            kwargs["_temp_dir"] = os.path.abspath(settings.ray_temp_dir)
    try:
        ray.init(**kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as err:
        raise SweepError(f"cannot start or join Ray ({err}).") from None
    try:
        yield
    finally:
        ray.shutdown()


def _scheduler(prepared: PreparedSweep):
    settings = prepared.settings
    if settings.scheduler != "asha":
        return None  # FIFO: every trial runs to the end
    from ray.tune.schedulers import ASHAScheduler

    # A trial ends by its own epoch budget (RecBole's epochs, plus e.g. REG4Rec's alignment
    # epochs); ASHA only stops it at a rung. max_t is therefore no real cap: a cap would cut
    # the final report, which carries the test metrics.
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=ASHA_MAX_T,
        grace_period=max(1, settings.grace_period),
        reduction_factor=settings.reduction_factor,
    )


def run_sweep(settings: SweepSettings, prepared: Optional[PreparedSweep] = None) -> SweepResult:
    """Validate (unless ``prepared`` is given), run every trial on Ray Tune, write the result files."""
    prepared = prepared or prepare(settings)
    check_address(settings.address)
    output = Path(settings.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    with ray_session(settings):
        grid = _fit(prepared, output)
        table, configs = results_table(grid, prepared)
    return write_outputs(table, configs, prepared, output)


def _fit(prepared: PreparedSweep, output: Path):
    from ray import tune

    from .ray_compat import failure_config, run_config

    settings = prepared.settings
    trainable = tune.with_parameters(recbole_trainable, setup=prepared.setup)
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=search_space(prepared.specs),
        tune_config=tune.TuneConfig(
            metric=SCORE_KEY,
            mode=prepared.mode,
            num_samples=settings.num_samples,
            scheduler=_scheduler(prepared),
        ),
        run_config=run_config(
            name=f"{settings.model}-{settings.dataset}",
            storage_path=str(output / "ray_results"),
            failure_config=failure_config(max_failures=0, fail_fast=False),
        ),
    )
    return tuner.fit()


def _error_line(error: BaseException) -> str:
    """The last meaningful line of a trial's error (Ray wraps it with a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _plain(value: Any) -> Any:
    """numpy scalars and tuples as plain Python values (for yaml and tables)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def results_table(grid, prepared: PreparedSweep):
    """One row per trial, best completed trial first.

    Returns:
        ``(table, configs)``: a pandas DataFrame and each trial's sampled values by trial id.
    """
    import pandas as pd

    keys = [spec.key for spec in prepared.specs]
    rows, configs = [], {}
    for result in grid:
        metrics = dict(result.metrics or {})
        error = getattr(result, "error", None)
        if error is not None:
            status = "failed"
        elif metrics.get(COMPLETED_KEY) == 1:
            status = "completed"
        else:
            status = "stopped early"
        row = {
            "trial": metrics.get("trial_id") or Path(str(result.path)).name,
            "status": status,
        }
        config = result.config or {}
        configs[row["trial"]] = {key: _plain(config.get(key)) for key in keys}
        for key in keys:
            value = _plain(config.get(key))
            row[key] = str(value) if isinstance(value, (list, dict)) else value
        row["epochs"] = metrics.get("epoch")
        row[SCORE_KEY] = metrics.get(SCORE_KEY)
        for name, value in metrics.items():
            if name.startswith("valid_") and name != SCORE_KEY:
                row[name] = value
        for name, value in metrics.items():
            if name.startswith("test_"):
                row[name] = value
        row["error"] = _error_line(error) if error is not None else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table, configs
    metrics = [c for c in table.columns if c.startswith("valid_") and c != SCORE_KEY]
    metrics += [c for c in table.columns if c.startswith("test_")]
    table = table[["trial", "status", *keys, "epochs", SCORE_KEY, *metrics, "error"]]
    order = {"completed": 0, "stopped early": 1, "failed": 2}
    table["_rank"] = table["status"].map(order)
    table = table.sort_values(
        ["_rank", SCORE_KEY], ascending=[True, prepared.mode == "min"], na_position="last", kind="stable"
    ).drop(columns="_rank")
    return table.reset_index(drop=True), configs


def best_config(prepared: PreparedSweep, best_values: Dict[str, Any]) -> Dict[str, Any]:
    """Config files + overrides + the best trial's values, merged in RecBole's priority order."""
    import yaml
    from recbole.config import Config

    merged: Dict[str, Any] = {}
    loader = Config._build_yaml_loader(None)  # RecBole's own yaml dialect (1e-3 is a float)
    for path in prepared.setup.config_files:
        with open(path, encoding="utf-8") as f:
            merged.update(yaml.load(f.read(), Loader=loader) or {})
    merged.update(prepared.setup.config_dict)
    for spec in prepared.specs:
        merged[spec.key] = _plain(best_values[spec.key])
    return {k: _plain(v) for k, v in merged.items()}


def write_outputs(table, configs: Dict[str, Dict[str, Any]], prepared: PreparedSweep, output: Path) -> SweepResult:
    """Write ``results.csv``, ``results.md`` and (if a trial completed) ``best_config.yaml``."""
    import yaml

    files = {"csv": str(output / "results.csv"), "markdown": str(output / "results.md")}
    table.to_csv(files["csv"], index=False)
    Path(files["markdown"]).write_text(markdown(table, prepared) + "\n")
    best = None
    if not table.empty and table.loc[0, "status"] == "completed":
        best = table.loc[0].to_dict()
        best["config"] = configs[best["trial"]]  # the table shows lists as text
        merged = best_config(prepared, best["config"])
        settings = prepared.settings
        header = (
            f"# Best of a Ray Tune sweep: {settings.model} on {settings.dataset}, trial {best['trial']}\n"
            f"# selected on validation {prepared.valid_metric} = {best[SCORE_KEY]:.6g}"
            + "".join(f", test {k[5:]} = {v:.4f}" for k, v in best.items() if k.startswith("test_") and _finite(v))
            + "\n"
            f"# reproduce: python run_recbole.py --model={settings.model} --dataset={settings.dataset} "
            f"--config_files={output / 'best_config.yaml'}\n"
        )
        files["best_config"] = str(output / "best_config.yaml")
        Path(files["best_config"]).write_text(header + yaml.safe_dump(merged, sort_keys=False))
    return SweepResult(table=table, best=best, files=files, prepared=prepared)


def markdown(table, prepared: PreparedSweep) -> str:
    """The result table as markdown: tuned values in full precision, metrics to 4 decimals."""
    if table.empty:
        return "(no trials)"
    keys = {spec.key for spec in prepared.specs}
    formats = ["g" if column in keys else ".4f" for column in table.columns]
    shown = table.astype(object).where(table.notna(), None)  # missing values as empty cells
    return shown.to_markdown(index=False, floatfmt=formats, missingval="")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

