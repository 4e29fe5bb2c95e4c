"""compat.atomic_files: RecBole's atomic-file loader on pandas 3, with errors naming file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from recbole.config import Config
from recbole.data import create_dataset
from recbole.utils import FeatureType

from recbole_reg4rec.compat.atomic_files import AtomicFileError


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _dataset(workdir, name, inter, item=None, **config):
    _write(workdir / "data" / name / f"{name}.inter", inter)
    if item is not None:
        _write(workdir / "data" / name / f"{name}.item", item)
    config_dict = {"data_path": str(workdir / "data"), "load_col": None, "train_neg_sample_args": None}
    config_dict.update(config)
    return create_dataset(Config(model="SASRec", dataset=name, config_dict=config_dict))


def _inter(n_users=4, n_items=5):
    rows = ["user_id:token\titem_id:token\ttimestamp:float"]
    t = 0
    for u in range(n_users):
        for i in range(n_items):
            t += 1
            rows.append(f"u{u}\t{(i + u) % n_items + 1}\t{t}")
    return "\n".join(rows) + "\n"


def test_pandas3_loads_sequence_fields_with_empty_cells(workdir):
    item = (
        "item_id:token\tgenre:token_seq\temb:float_seq\tprice:float\n"
        "1\ta b\t0.5 1.5\t3.0\n"
        "2\t\t\t\n"  # every optional cell empty
        "3\tc\t2.0\t5.0\n"
        "4\ta c b\t1 2 3\t7.0\n"
        "5\tb\t4\t1.0\n"
    )
    ds = _dataset(workdir, "seqs", _inter(), item)
    assert ds.field2type["genre"] == FeatureType.TOKEN_SEQ
    feat = ds.item_feat.set_index(ds.iid_field)  # still a DataFrame before build()
    row = {tok: ds.field2token_id[ds.iid_field][tok] for tok in "12345"}
    assert [len(feat.loc[row[t], "genre"]) for t in "1234"] == [2, 0, 1, 3]
    assert feat.loc[row["2"], "price"] == pytest.approx((3.0 + 5.0 + 7.0 + 1.0) / 4)  # mean fill
    assert feat.loc[row["4"], "emb"].tolist() == [1.0, 2.0, 3.0] and len(feat.loc[row["2"], "emb"]) == 0
    assert ds.field2seqlen["genre"] == 3 and ds.field2seqlen["emb"] == 3
    item_feat = ds.get_item_feature() if hasattr(ds.item_feat, "interaction") else None
    assert item_feat is None or item_feat["genre"].shape[1] == 3


@pytest.mark.parametrize(
    "header, row, expected",
    [
        ("item_id:token\tprice:flaot", "1\t3.0", "unknown type suffix 'flaot'"),
        ("item_id\tprice:float", "1\t3.0", "is not of the form `field:type`"),
        ("item_id:token\tprice:float", "1\tcheap", "line 2, field 'price' (float) holds the non-numeric value 'cheap'"),
    ],
)
def test_bad_atomic_file_names_file_line_and_fix(workdir, header, row, expected):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "bad", _inter(), f"{header}\n{row}\n")
    message = str(info.value)
    assert "bad.item" in message and expected in message


def test_non_utf8_file_gets_clear_error(workdir):
    path = workdir / "data" / "latin" / "latin.inter"
    path.parent.mkdir(parents=True)
    path.write_bytes("user_id:token\titem_id:token\n".encode() + "caf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(AtomicFileError, match="not valid utf-8"):
        create_dataset(Config(model="SASRec", dataset="latin",
                              config_dict={"data_path": str(workdir / "data"), "load_col": None,
                                           "train_neg_sample_args": None}))
