"""``build_semantic_ids``: item features -> tokenizer -> diagnostics, with an on-disk cache."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import torch

from .cache import SemanticIDCache, dataset_fingerprint
from .diagnostics import TokenizerReport, make_report
from .features import build_item_features, resolve_source
from .mpq import capped_epochs, train_mpq
from .product import train_pq_kmeans
from .residual import train_rq_kmeans
from .semantic_ids import SemanticIDs
from .settings import TokenizerSettings
from .threads import single_threaded


def build_semantic_ids(config, dataset, logger: Optional[logging.Logger] = None) -> SemanticIDs:
    """Tokens of every item of ``dataset``, from the cache when an identical build exists.

    Args:
        config: a RecBole ``Config`` (or dict) holding the keys of ``properties/tokenizer.yaml``;
            ``config['tokenizer']`` picks ``mpq`` (unordered) or ``rq`` (ordered + de-dup token).
        dataset: the dataset a model receives (``train_data._dataset``): its ``inter_feat`` must
            hold only training interactions, which is all collaborative features ever see.
        logger: defaults to the root logger (RecBole's).

    Returns:
        :class:`SemanticIDs` with ``codes [dataset.item_num, M]``, row 0 the pad codes.

    Raises:
        ValueError (:class:`TokenizerConfigError`): a config key holds an unusable value; the
            message names the key and the fix.
    """
    return build_semantic_ids_with_report(config, dataset, logger)[0]


def build_semantic_ids_with_report(config, dataset, logger: Optional[logging.Logger] = None):
    """As :func:`build_semantic_ids`, also returning the :class:`TokenizerReport`."""
    with single_threaded():
        return _build(config, dataset, logger or logging.getLogger())


def _build(config, dataset, logger: logging.Logger):
    settings = TokenizerSettings.from_config(config)
    settings.check_catalogue(dataset.item_num - 1)
    source = resolve_source(dataset, settings, logger)
    tokenizer = settings.tokenizer.lower()

    cache = path = fingerprint = None
    if settings.tokenizer_cache_dir:
        started = time.perf_counter()
        fingerprint = dataset_fingerprint(dataset, settings, source)
        cache = SemanticIDCache(settings.tokenizer_cache_dir, logger)
        path = cache.path(_get(config, "dataset") or "dataset", tokenizer, fingerprint)
        hit = cache.load(path, fingerprint, dataset.item_num)
        if hit is not None:
            sem, report = _cached_report(tokenizer, *hit)
            report.extra["cache"] = f"hit {path} ({time.perf_counter() - started:.2f} s)"
            report.log(logger)
            return sem, report

    n_items = dataset.item_num - 1
    budget = f", up to {capped_epochs(settings, n_items)} epochs" if tokenizer == "mpq" else ""
    logger.info(f"Tokenizer: {tokenizer} semantic IDs for {n_items} items "
                f"({settings.n_codebooks} codebooks x {settings.codebook_size} codewords{budget})")
    started = time.perf_counter()
    features = build_item_features(dataset, settings, logger, source)
    feature_seconds = time.perf_counter() - started
    writer = _tensorboard(logger)
    sem, report = _tokenize(features.vectors[1:], settings, writer, bool(_get(config, "show_progress")))
    report.extra.update({
        "feature source": features.source,
        "feature dim": int(features.vectors.size(1)),
        "items without side info": features.n_without_side_info,
        "items without train inter.": features.n_without_interactions,
        "seconds (features/total)": f"{feature_seconds:.1f} / {time.perf_counter() - started:.1f}",
    })
    if cache is not None:
        cache.save(path, fingerprint, sem, dataclasses.asdict(report))
        report.extra["cache"] = f"written {path}"
    report.log(logger, writer)
    if writer is not None:
        writer.close()
    return sem, report


def _tokenize(real: torch.Tensor, settings: TokenizerSettings, writer, show_progress: bool):
    """Run the configured tokenizer on ``real [N, d]`` (padding excluded); add the pad row."""
    extra = {}
    if settings.tokenizer.lower() == "mpq":
        on_epoch = None
        if writer is not None:
            def on_epoch(epoch, stats):
                for k, v in stats.items():
                    writer.add_scalar(f"tokenizer/train/{k}", v, epoch)
        result = train_mpq(real, settings, show_progress=show_progress, on_epoch=on_epoch)
        codes, sizes = result.codes, (settings.codebook_size,) * settings.n_codebooks
        recon, latents = result.recon_error, result.latents
        if settings.mpq_resolve_collisions:
            extra["collision resolution"] = (
                f"unique before: {100 * result.unique_before_resolution:.2f} %, "
                f"items re-assigned: {result.n_reassigned}"
            )
    elif settings.tokenizer.lower() == "pq":
        result = train_pq_kmeans(real, settings.n_codebooks, settings.codebook_size, int(settings.tokenizer_seed),
                                 resolve=settings.mpq_resolve_collisions)
        codes, sizes, recon, latents = result.codes, (settings.codebook_size,) * settings.n_codebooks, result.recon_error, None
        extra["collision resolution"] = (
            f"unique before: {100 * result.unique_before_resolution:.2f} %, items re-assigned: {result.n_reassigned}"
        )
    else:
        result = train_rq_kmeans(real, settings.n_codebooks, settings.codebook_size, int(settings.tokenizer_seed))
        codes, sizes, recon, latents = result.codes, result.codebook_sizes, result.recon_error, None
        unique_before = make_report("rq", result.prefix_codes, sizes[:-1]).unique_share
        extra["unique before de-dup"] = f"{100 * unique_before:.2f} %"
    pad = torch.tensor(sizes, dtype=torch.long).unsqueeze(0)  # row 0: RecBole's padding item
    sem = SemanticIDs(torch.cat([pad, codes.long()], dim=0), tuple(int(s) for s in sizes), settings.ordered)
    return sem, make_report(settings.tokenizer.lower(), codes, sizes, recon, latents, extra)


def _cached_report(tokenizer: str, sem: SemanticIDs, report_dict: dict):
    try:
        return sem, TokenizerReport(**report_dict)
    except TypeError:  # a report written by another version: the tokens are fine, the report is not
        return sem, make_report(tokenizer, sem.codes[1:], sem.codebook_sizes)


def _tensorboard(logger: logging.Logger):
    try:
        from recbole.utils import get_tensorboard

        return get_tensorboard(logger)
    except Exception as err:  # tensorboard is optional for tokenization
        logger.debug(f"no tensorboard writer for the tokenizer: {err!r}")
        return None


def _get(config, key):
    if isinstance(config, dict):
        return config.get(key)
    return config[key]
