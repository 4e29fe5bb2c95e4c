"""Counts of the data RecBole silently leaves out, logged once per dataset.

RecBole's ``Dataset`` quietly ignores two common defects of real atomic files:

* users with a single interaction: a sequential model has no history to predict that item
  from, and leave-one-out evaluation has nothing to validate or test them on, so they give no
  example at all;
* items of ``.inter`` without a row in ``.item``: their interactions are dropped (RecBole's
  default ``filter_inter_by_user_or_item: True``) or kept with default side information
  (token fields ``[PAD]``, float fields the column mean, empty sequences).

Training on the rest is correct; these checks only say how much data is affected and how to
change it. They run right after RecBole's own filtering (``_data_filtering``), on the raw
tokens, so the numbers refer to the user's files (the missing-item count is taken just before it).
"""

from __future__ import annotations

import functools

import pandas as pd


def _log_single_interaction_users(dataset) -> None:
    uid = dataset.uid_field
    inter = dataset.inter_feat
    if uid is None or inter is None or uid not in inter:
        return
    counts = inter[uid].value_counts()
    single = counts[counts == 1]
    if len(single):
        shown = ", ".join(map(repr, single.index[:5].tolist())) + (", ..." if len(single) > 5 else "")
        dataset.logger.warning(
            f"[{dataset.dataset_name}] {len(single)} of {len(counts)} user(s) have a single interaction "
            f"({shown}): a sequential model gets no example from them and leave-one-out evaluation cannot "
            f"test them. They are left out of every example; to drop them explicitly set "
            f'`user_inter_num_interval: "[2,inf)"`.'
        )


def _items_without_side_info(dataset):
    """``(item tokens of .inter missing from .item, number of their interactions)`` or ``None``."""
    iid = dataset.iid_field
    inter, item = dataset.inter_feat, dataset.item_feat
    if iid is None or inter is None or item is None or iid not in inter or iid not in item:
        return None
    in_inter = inter[iid]
    absent = ~in_inter.isin(pd.Index(item[iid]))
    if not absent.any():
        return None
    return pd.unique(in_inter[absent]), int(absent.sum())


def _log_items_without_side_info(dataset, found) -> None:
    missing, n_inter = found
    shown = ", ".join(map(repr, list(missing[:5]))) + (", ..." if len(missing) > 5 else "")
    what = f"{len(missing)} item(s) of the .inter file have no row in the .item file ({shown}; {n_inter} interaction(s))"
    if dataset.config["filter_inter_by_user_or_item"]:
        dataset.logger.warning(
            f"[{dataset.dataset_name}] {what}: those interactions were dropped (RecBole's "
            f"`filter_inter_by_user_or_item: True`). Add the items to the .item file, or set "
            f"`filter_inter_by_user_or_item: False` to keep them with default side information."
        )
    else:
        dataset.logger.warning(
            f"[{dataset.dataset_name}] {what}: they are kept; their side-information fields get defaults "
            f"(token fields [PAD], float fields the column mean, empty sequences)."
        )


def _wrap_data_filtering(original):
    @functools.wraps(original)
    def _data_filtering(self):
        without_side_info = _items_without_side_info(self)
        original(self)
        _log_single_interaction_users(self)
        if without_side_info is not None:
            _log_items_without_side_info(self, without_side_info)

    _data_filtering.__reg4rec_wrapped__ = True
    return _data_filtering


def install() -> None:
    """Log the counts above after RecBole's own filtering (idempotent)."""
    from recbole.data.dataset import Dataset

    if not getattr(Dataset._data_filtering, "__reg4rec_wrapped__", False):
        Dataset._data_filtering = _wrap_data_filtering(Dataset._data_filtering)
