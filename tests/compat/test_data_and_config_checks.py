"""Bad input: every defect of an atomic file or config ends in a clear error naming the file,
line or key, or in loading the valid part with a logged count of what was dropped and why.

Dataset loading only (no training): each case takes well under a second. Cases already covered
in test_foundation.py (unknown type suffix / header column without type / non-numeric float in
``.item``, non-UTF-8 error) are extended here, not repeated.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation

from recbole_reg4rec.compat.atomic_files import DEFAULT_TOKEN_SEQ_CAP, AtomicFileError
from recbole_reg4rec.compat.config_checks import ConfigTypeError, parse_declaration

HEADER = "user_id:token\titem_id:token\ttimestamp:float"
SEQ_CONFIG = {"eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}}


def _inter(n_users=4, n_items=6, extra_rows=()):
    rows = [HEADER]
    t = 0
    for u in range(n_users):
        for i in range(n_items):
            t += 1
            rows.append(f"u{u}\t{(i + u) % n_items + 1}\t{t}")
    rows.extend(extra_rows)
    return "\n".join(rows) + "\n"


def _config(workdir, name, inter, item=None, **config):
    folder = workdir / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(inter, bytes):
        (folder / f"{name}.inter").write_bytes(inter)
    else:
        (folder / f"{name}.inter").write_text(inter)
    if item is not None:
        (folder / f"{name}.item").write_text(item)
    config_dict = {"data_path": str(workdir / "data"), "load_col": None, "train_neg_sample_args": None}
    config_dict.update(config)
    return Config(model="SASRec", dataset=name, config_dict=config_dict)


def _dataset(workdir, name, inter, item=None, **config):
    return create_dataset(_config(workdir, name, inter, item, **config))


def _warnings(caplog):
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.fixture
def warnings_log(caplog):
    caplog.set_level(logging.WARNING)
    return caplog


# ---- structure of the file ----------------------------------------------------------------------
def test_missing_header_says_line_1_is_data(workdir):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "nohead", "u1\t1\t1\nu1\t2\t2\n")
    message = str(info.value)
    assert "nohead.inter: line 1" in message and "is not a header" in message and "field:type" in message


def test_unknown_type_suffix_in_inter_names_file_and_types(workdir):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "suffix", "user_id:token\titem_id:token\ttimestamp:date\nu1\t1\t5\n")
    message = str(info.value)
    assert "suffix.inter" in message and "unknown type suffix 'date'" in message and "float_seq" in message


def test_line_with_too_many_fields_is_named(workdir):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "many", _inter(extra_rows=["u9\t1\t100\textra"]))
    message = str(info.value)
    assert "many.inter: line 26 has 4 fields but the header has 3" in message


def test_line_with_too_few_fields_is_not_nan_filled(workdir):
    # pandas would read "u9<TAB>1" as timestamp = NaN without a word; we name every such line
    inter = _inter(extra_rows=["u9\t1", "u9\t2\t101", "u9\t3"])
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "few", inter)
    message = str(info.value)
    assert "few.inter: line 26 has 2 fields but the header has 3" in message
    assert "2 line(s) with a wrong field count" in message and "line 28: 2" in message


def test_non_numeric_float_in_inter_names_line_and_field(workdir):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "nonnum", _inter(extra_rows=["u9\t1\tyesterday"]))
    assert "nonnum.inter: line 26, field 'timestamp' (float) holds the non-numeric value 'yesterday'" in str(info.value)


@pytest.mark.parametrize("content, expected", [
    (HEADER + "\n", "has a header but no interaction lines"),
    (b"", "the file is empty"),
])
def test_empty_inter_is_an_error(workdir, content, expected):
    with pytest.raises(AtomicFileError) as info:
        _dataset(workdir, "empty", content)
    assert "empty.inter" in str(info.value) and expected in str(info.value)


def test_non_utf8_file_loads_with_the_encoding_key(workdir):
    data = (HEADER + "\n").encode() + "café\t1\t1\ncafé\t2\t2\nbob\t1\t3\nbob\t2\t4\n".encode("latin-1")
    with pytest.raises(AtomicFileError, match="line 2 is not valid utf-8"):
        _dataset(workdir, "latin", data)
    ds = _dataset(workdir, "latin", data, encoding="latin-1")
    assert "café" in ds.field2id_token["user_id"].tolist() and len(ds.inter_feat) == 4


# ---- rows that are dropped or kept with a logged count ------------------------------------------
def test_duplicate_item_rows_keep_the_first_and_are_counted(workdir, warnings_log):
    item = "item_id:token\tprice:float\n" + "\n".join(
        ["1\t10", "2\t20", "2\t99", "3\t30", "4\t40", "5\t50", "6\t60", "3\t77"]) + "\n"
    ds = _dataset(workdir, "dup", _inter(), item)
    feat = ds.item_feat.set_index(ds.iid_field)
    token_id = ds.field2token_id[ds.iid_field]
    assert feat.loc[token_id["2"], "price"] == 20 and feat.loc[token_id["3"], "price"] == 30
    log = _warnings(warnings_log)
    assert "dup.item: dropped 2 duplicate row(s) of 'item_id' (lines 4, 9; ids '2', '3')" in log


def test_users_with_a_single_interaction_give_no_example_and_are_counted(workdir, warnings_log):
    config = _config(workdir, "lonely", _inter(extra_rows=["solo\t3\t999", "alone\t4\t1000"]), **SEQ_CONFIG)
    ds = create_dataset(config)
    train, valid, test = data_preparation(config, ds)
    users = {ds.field2id_token["user_id"][u] for d in (train, valid, test) for u in d._dataset.inter_feat["user_id"].tolist()}
    assert users == {"u0", "u1", "u2", "u3"}  # training on the valid part: every other user is there
    assert "2 of 6 user(s) have a single interaction ('solo', 'alone')" in _warnings(warnings_log)


def test_items_missing_from_item_file_are_counted_dropped_or_kept(workdir, warnings_log):
    item = "item_id:token\tprice:float\n" + "\n".join(f"{i}\t{10 * i}" for i in range(1, 6)) + "\n"  # no item 6
    ds = _dataset(workdir, "noitem", _inter(), item)
    assert "6" not in ds.field2token_id["item_id"] and len(ds.inter_feat) == 20  # 4 interactions with item 6 gone
    log = _warnings(warnings_log)
    assert "1 item(s) of the .inter file have no row in the .item file ('6'; 4 interaction(s))" in log
    assert "were dropped" in log

    warnings_log.clear()
    kept = _dataset(workdir, "noitem", _inter(), item, filter_inter_by_user_or_item=False)
    assert len(kept.inter_feat) == 24
    feat = kept.item_feat.set_index(kept.iid_field)
    assert feat.loc[kept.field2token_id["item_id"]["6"], "price"] == pytest.approx(30.0)  # column mean
    assert "they are kept; their side-information fields get defaults" in _warnings(warnings_log)


def test_missing_nan_and_negative_timestamps(workdir, warnings_log):
    extra = ["u9\t1\t", "u9\t2\tnan", "u9\t3\tinf", "u8\t1\t-5", "u8\t2\t-3"]
    ds = _dataset(workdir, "times", _inter(extra_rows=extra))
    assert len(ds.inter_feat) == 24 + 2  # the three u9 rows are dropped, the negative ones kept
    assert "u9" not in ds.field2token_id["user_id"]
    log = _warnings(warnings_log)
    assert "times.inter: dropped 3 of 29 interaction(s) with a missing, NaN or infinite 'timestamp' (lines 26, 27, 28)" in log
    assert "2 interaction(s) have a negative 'timestamp'; they are kept" in log and "val_interval" in log


def test_extremely_long_token_seq_cell_is_capped(workdir, warnings_log):
    huge = " ".join(f"t{i}" for i in range(100_000))
    item = "item_id:token\ttags:token_seq\n" + f"1\t{huge}\n" + "".join(f"{i}\ta b\n" for i in range(2, 7))
    started = time.perf_counter()
    ds = _dataset(workdir, "long", _inter(), item)
    seconds = time.perf_counter() - started
    assert ds.field2seqlen["tags"] == DEFAULT_TOKEN_SEQ_CAP
    row = ds.item_feat.set_index(ds.iid_field).loc[ds.field2token_id["item_id"]["1"], "tags"]
    assert len(row) == DEFAULT_TOKEN_SEQ_CAP and len(ds.field2id_token["tags"]) < 1000  # vocabulary of kept tokens only
    assert f"1 cell(s) longer than {DEFAULT_TOKEN_SEQ_CAP} entries were truncated" in _warnings(warnings_log)
    assert "longest: 100000" in _warnings(warnings_log)
    assert seconds < 30  # loading is not quadratic or padded to 100k

    longer = _dataset(workdir, "long", _inter(), item, seq_len={"tags": 2000})
    assert longer.field2seqlen["tags"] == 2000  # the user's seq_len wins


# ---- config values of the wrong type -------------------------------------------------------------
@pytest.mark.parametrize("key, value, expected", [
    ("epochs", "ten", "an integer"),
    ("learning_rate", "fast", "a number"),
    ("topk", "abc", "a list"),
    ("reproducibility", "maybe", "True or False"),
])
def test_config_value_of_wrong_type_names_the_key(workdir, key, value, expected):
    with pytest.raises(ConfigTypeError) as info:
        Config(model="SASRec", dataset="ml-100k", config_dict={"train_neg_sample_args": None, key: value})
    message = str(info.value)
    assert f"config key {key!r} = {value!r} (from config_dict) must be" in message and expected in message


def test_config_types_accept_recbole_spellings(workdir):
    config = Config(model="SASRec", dataset="ml-100k", config_dict={
        "train_neg_sample_args": None, "topk": 5, "learning_rate": 1, "metrics": "Recall", "gpu_id": 0,
        "epochs": 3, "seq_len": None, "my_own_key": "anything",
    })
    assert config["topk"] == [5] and config["learning_rate"] == 1
    assert parse_declaration("list or int or None") == {"list", "int", "none"}
    assert parse_declaration("file name of stored xgb model") is None


def test_cli_rejects_wrong_config_type_before_loading_data(workdir, monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_recbole_cli", Path(__file__).resolve().parents[2] / "run_recbole.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = ["--model=SASRec", "--dataset=nosuchdata", "--epochs=ten", "--learning_rate=fast"]
    monkeypatch.setattr("sys.argv", ["run_recbole.py", *argv])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "'epochs' = 'ten' (from the command line) must be an integer" in err
    assert "'learning_rate' = 'fast'" in err and "Traceback" not in err
    assert not Path("saved").exists()  # nothing was loaded or trained
