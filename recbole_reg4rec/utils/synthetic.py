"""Tiny synthetic RecBole atomic datasets with learnable structure, for fast tests and checks.

Items fall into ``n_clusters`` latent clusters. Side information reflects the cluster (genre
tokens, a price level, an optional dense embedding) and users mostly walk through the items of
their favourite cluster in a fixed order, so both content-based and sequential models have
something to learn. Everything is a pure function of ``seed``.

The tests run on them, and so do the checks in ``scripts/``. Example::

    from recbole_reg4rec.utils.synthetic import write_synthetic_dataset
    write_synthetic_dataset(tmp_path, "toy")
    config = Config(model="SASRec", dataset="toy", config_dict={
        "data_path": str(tmp_path),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                     "item": ["item_id", "genre", "price", "emb"]},
    })
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

#: ``load_col`` matching the files written by :func:`write_synthetic_dataset` (with side info).
SYNTHETIC_LOAD_COL: Dict[str, List[str]] = {
    "inter": ["user_id", "item_id", "rating", "timestamp"],
    "item": ["item_id", "genre", "price", "emb"],
}


def write_synthetic_dataset(
    root: Path,
    name: str,
    n_users: int = 60,
    n_items: int = 100,
    with_item_file: bool = True,
    seed: int = 0,
    *,
    n_clusters: int = 5,
    min_seq_len: int = 8,
    max_seq_len: int = 20,
    p_in_cluster: float = 0.85,
    with_emb: bool = True,
    emb_dim: int = 8,
    n_items_without_side_info: int = 0,
) -> Path:
    """Write ``<root>/<name>/<name>.inter`` (and ``.item``) as RecBole atomic files.

    Args:
        root: parent folder; pass it as RecBole's ``data_path``.
        name: dataset name (folder and file stem).
        n_users, n_items: sizes. Item tokens are ``"1".."n_items"``, user tokens ``"u1"..``.
        with_item_file: write ``<name>.item`` with ``item_id:token genre:token_seq
            price:float`` (+ ``emb:float_seq`` when ``with_emb``).
        seed: the only source of randomness.
        n_clusters: number of latent item clusters (items ``i`` with ``i % n_clusters == k``).
        min_seq_len, max_seq_len: per-user number of interactions, uniform in this range.
        p_in_cluster: probability that the next item comes from the user's favourite cluster
            (the next one in that cluster's fixed order); otherwise a uniformly random item.
        with_emb: also write a dense ``emb:float_seq`` field (cluster centroid + noise).
        emb_dim: its size.
        n_items_without_side_info: the last this-many items are left out of the ``.item`` file
            (they still occur in interactions), to exercise missing side information.

    Returns:
        The dataset folder ``<root>/<name>``.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    item_ids = np.arange(1, n_items + 1)
    cluster = item_ids % n_clusters  # [n_items]

    # Interactions: each user follows their favourite cluster's fixed item order with noise.
    members = [item_ids[cluster == k] for k in range(n_clusters)]
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t0 = 880_000_000
    for u in range(1, n_users + 1):
        fav = int(rng.integers(n_clusters))
        pos = int(rng.integers(len(members[fav])))
        length = int(rng.integers(min_seq_len, max_seq_len + 1))
        t = t0 + int(rng.integers(0, 10_000_000))
        for _ in range(length):
            if rng.random() < p_in_cluster:
                item = int(members[fav][pos % len(members[fav])])
                pos += 1
            else:
                item = int(rng.integers(1, n_items + 1))
            rating = float(rng.integers(3, 6) if cluster[item - 1] == fav else rng.integers(1, 4))
            t += int(rng.integers(60, 100_000))
            lines.append(f"u{u}\t{item}\t{rating:.1f}\t{t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")

    if with_item_file:
        genres = [f"g{k}" for k in range(n_clusters)]
        centroids = rng.normal(size=(n_clusters, emb_dim))
        header = "item_id:token\tgenre:token_seq\tprice:float"
        if with_emb:
            header += "\temb:float_seq"
        rows = [header]
        kept = n_items - n_items_without_side_info
        for i in item_ids[:kept]:
            k = int(cluster[i - 1])
            g = [genres[k]]
            if rng.random() < 0.3:  # a secondary genre, so token sets vary inside a cluster
                g.append(genres[int(rng.integers(n_clusters))])
            price = 10.0 * (k + 1) + float(rng.normal(scale=2.0))
            row = f"{i}\t{' '.join(g)}\t{price:.2f}"
            if with_emb:
                vec = centroids[k] + 0.3 * rng.normal(size=emb_dim)
                row += "\t" + " ".join(f"{x:.4f}" for x in vec)
            rows.append(row)
        (folder / f"{name}.item").write_text("\n".join(rows) + "\n")
    return folder
