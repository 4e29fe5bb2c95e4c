"""MSRA's future items: the user's next H *training* interactions after each training target.

Computed once per dataset from the training split alone, so validation and test items can never
leak into rewards: in a leave-one-out split they are not in the training split at all.
"""

from __future__ import annotations

import numpy as np
import torch

FUTURE_FIELD = "future_item_id_list"


def training_future_items(train_dataset, horizon: int) -> torch.Tensor:
    """For every row of the training split, the targets of the same user's next ``horizon``
    training rows (time order), 0-padded.

    Args:
        train_dataset: RecBole's training-split dataset (``train_data._dataset``) whose
            ``inter_feat`` holds one row per (history, target) training case.
        horizon: H >= 0.

    Returns:
        ``[n_rows, H]`` long item ids (0 = the user has no such training item).
    """
    inter = train_dataset.inter_feat
    n_rows = len(inter)
    future = torch.zeros(n_rows, horizon, dtype=torch.long)
    if horizon == 0 or n_rows == 0:
        return future
    users = inter[train_dataset.uid_field].numpy()
    items = inter[train_dataset.iid_field].numpy()
    time_field = train_dataset.time_field
    if time_field is not None and time_field in inter.columns:
        times = inter[time_field].numpy()
        order = np.lexsort((np.arange(n_rows), times, users))  # by user, then time, then row
    else:  # RecBole keeps rows of a user in time order; keep that order
        order = np.lexsort((np.arange(n_rows), users))
    sorted_users = users[order]
    sorted_items = items[order]
    for h in range(1, horizon + 1):
        same_user = np.zeros(n_rows, dtype=bool)
        same_user[:-h] = sorted_users[h:] == sorted_users[:-h]
        nxt = np.zeros(n_rows, dtype=np.int64)
        nxt[:-h] = sorted_items[h:]
        future[torch.from_numpy(order), h - 1] = torch.from_numpy(np.where(same_user, nxt, 0))
    return future


def attach_future_items(train_dataset, horizon: int) -> None:
    """Add :data:`FUTURE_FIELD` (``[n_rows, H]``) to the training split's interactions, so every
    training batch carries its rows' future items (shuffling keeps them aligned)."""
    future = training_future_items(train_dataset, horizon)
    train_dataset.inter_feat.interaction[FUTURE_FIELD] = future
