"""build_semantic_ids on tiny synthetic RecBole datasets: features, cache, bad input, CLI."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation

from recbole_reg4rec.compat.atomic_files import AtomicFileError
from recbole_reg4rec.registry import property_file
from recbole_reg4rec.tokenizer import TokenizerConfigError, build_semantic_ids, build_semantic_ids_with_report
from recbole_reg4rec.tokenizer import build as build_module
from recbole_reg4rec.tokenizer.cache import dataset_fingerprint
from recbole_reg4rec.tokenizer.features import build_item_features, collaborative_vectors, training_sequences
from recbole_reg4rec.tokenizer.settings import TokenizerSettings
from entry_points import load_entry_point
from synthetic import SYNTHETIC_LOAD_COL, write_synthetic_dataset

REPO = Path(__file__).resolve().parents[2]
SMALL = {
    "n_codebooks": 3,
    "codebook_size": 8,
    "mpq_epochs": 8,
    "mpq_expert_hidden": 32,
    "mpq_latent_dim": 8,
    "feature_dim": 16,
    "collab_dim": 16,
}
LEAVE_ONE_OUT = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}


def train_dataset(data: Path, name: str, **overrides):
    """(config, training dataset as a model receives it) for ``<data>/<name>``."""
    config_dict = {
        "data_path": str(data),
        "load_col": SYNTHETIC_LOAD_COL,
        "train_neg_sample_args": None,
        "eval_args": LEAVE_ONE_OUT,
        "show_progress": False,
        "seed": 2020,
        **SMALL,
        **overrides,
    }
    config = Config(model="SASRec", dataset=name, config_file_list=[str(property_file("tokenizer.yaml"))],
                    config_dict=config_dict)
    train, _, _ = data_preparation(config, create_dataset(config))
    return config, train._dataset


@pytest.fixture
def toy(workdir):
    write_synthetic_dataset(workdir / "data", "toy")
    return workdir / "data"


def test_mpq_semantic_ids_cover_the_catalogue_with_a_pad_row(toy):
    config, ds = train_dataset(toy, "toy", tokenizer_cache_dir="")
    sem, report = build_semantic_ids_with_report(config, ds)
    assert sem.codes.shape == (ds.item_num, 3) and not sem.ordered
    assert sem.codebook_sizes == (8, 8, 8)
    assert sem.codes[0].tolist() == [8, 8, 8]
    assert int(sem.codes[1:].max()) < 8 and int(sem.codes[1:].min()) >= 0
    assert report.extra["feature source"] == "hybrid"
    assert report.n_items == ds.item_num - 1
    assert torch.equal(build_semantic_ids(config, ds).codes, sem.codes)  # same seed, same tokens
    assert list(Path("log_tensorboard").rglob("events.out.tfevents*"))  # scalars were written


def test_rq_semantic_ids_are_ordered_and_unique(toy):
    config, ds = train_dataset(toy, "toy", tokenizer="rq", n_codebooks=2, tokenizer_cache_dir="")
    sem = build_semantic_ids(config, ds)
    assert sem.ordered and sem.n_codebooks == 3  # 2 residual levels + de-duplication token
    assert sem.codebook_sizes[:2] == (8, 8)
    assert torch.unique(sem.codes[1:], dim=0).size(0) == ds.item_num - 1


def test_cache_hit_skips_training_and_any_change_misses(toy, monkeypatch, caplog):
    assert Path.cwd() == toy.parent
    config, ds = train_dataset(toy, "toy")
    first = build_semantic_ids(config, ds)
    files = list(Path("saved/semantic_ids").glob("toy-mpq-*.npz"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    with monkeypatch.context() as patch, caplog.at_level(logging.INFO):
        patch.setattr(build_module, "train_mpq", no_training)
        again = build_semantic_ids(config, ds)
    assert torch.equal(again.codes, first.codes) and "hit" in caplog.text

    config2, ds2 = train_dataset(toy, "toy", mpq_orth_weight=0.5)  # tokenizer config changed
    build_semantic_ids(config2, ds2)
    assert len(list(Path("saved/semantic_ids").glob("toy-mpq-*.npz"))) == 2

    inter = toy / "toy" / "toy.inter"  # dataset content changed: one rating -> a new interaction order
    lines = inter.read_text().splitlines()
    lines[2] = lines[2].split("\t")[0] + "\t7\t" + "\t".join(lines[2].split("\t")[2:])
    inter.write_text("\n".join(lines) + "\n")
    config3, ds3 = train_dataset(toy, "toy")
    build_semantic_ids(config3, ds3)
    assert len(list(Path("saved/semantic_ids").glob("toy-mpq-*.npz"))) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper"])
def test_corrupted_cache_is_detected_and_rebuilt(toy, caplog, damage):
    config, ds = train_dataset(toy, "toy", tokenizer="rq")
    first = build_semantic_ids(config, ds)
    (path,) = Path("saved/semantic_ids").glob("*.npz")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * len(raw))
    else:  # a well-formed file whose codes were edited: only the checksum can tell
        with np.load(path, allow_pickle=False) as z:
            content = dict(z)
        content["codes"] = content["codes"].copy()
        content["codes"][1, 0] = (content["codes"][1, 0] + 1) % 8
        np.savez(path, **content)
    with caplog.at_level(logging.WARNING):
        rebuilt = build_semantic_ids(config, ds)
    assert "corrupted" in caplog.text
    assert torch.equal(rebuilt.codes, first.codes)
    with np.load(path, allow_pickle=False) as z:  # the rebuilt file is whole again
        assert np.array_equal(z["codes"], first.codes.numpy())


def test_collaborative_features_never_see_validation_or_test(workdir):
    data = workdir / "data"
    for name in ("a", "b"):
        write_synthetic_dataset(data, name, n_users=40, n_items=25, with_item_file=False, seed=3)
    # In b, each user's last two interactions (validation and test under leave-one-out) name
    # another item; the training split, hence the collaborative vectors, must not change. Only
    # rows whose item was seen earlier in the file change, and the new item is the user's first
    # one, so RecBole's token -> id mapping (first appearance) stays the same.
    path = data / "b" / "b.inter"
    header, *rows = path.read_text().splitlines()
    by_user = {}
    for i, row in enumerate(rows):
        by_user.setdefault(row.split("\t")[0], []).append(i)
    first_seen = {}
    for i, row in enumerate(rows):
        first_seen.setdefault(row.split("\t")[1], i)
    changed_rows = 0
    for idx in by_user.values():
        for i in idx[-2:]:
            user, item, *rest = rows[i].split("\t")
            replacement = rows[idx[0]].split("\t")[1]
            if first_seen[item] < i and replacement != item:
                rows[i] = "\t".join([user, replacement, *rest])
                changed_rows += 1
    assert changed_rows > 20
    path.write_text("\n".join([header, *rows]) + "\n")

    settings = TokenizerSettings(collab_dim=8, tokenizer_seed=0)
    vectors, tokens, n_train = {}, {}, {}
    for name in ("a", "b"):
        _, ds = train_dataset(data, name, load_col={"inter": ["user_id", "item_id", "rating", "timestamp"]})
        vectors[name] = collaborative_vectors(ds, settings)[0]
        tokens[name] = list(ds.field2id_token["item_id"])
        n_train[name] = training_sequences(ds, 5)[1].numel()
    assert tokens["a"] == tokens["b"]  # same items, same internal ids
    assert n_train["a"] == len(rows) - 3 * len(by_user)  # training rows only
    np.testing.assert_allclose(vectors["a"], vectors["b"], atol=1e-8)

    # Control: changing a training interaction does change them.
    rows[0] = "\t".join([rows[0].split("\t")[0], "13", *rows[0].split("\t")[2:]])
    path.write_text("\n".join([header, *rows]) + "\n")
    _, ds = train_dataset(data, "b", load_col={"inter": ["user_id", "item_id", "rating", "timestamp"]})
    changed = collaborative_vectors(ds, settings)[0]
    assert changed.shape != vectors["a"].shape or not np.allclose(changed, vectors["a"], atol=1e-6)


def test_general_dataset_builds_histories_by_user_and_time(toy):
    config = Config(model="BPR", dataset="toy", config_file_list=[str(property_file("tokenizer.yaml"))],
                    config_dict={"data_path": str(toy), "load_col": SYNTHETIC_LOAD_COL, "eval_args": LEAVE_ONE_OUT,
                                 "show_progress": False, "tokenizer_cache_dir": None, **SMALL})
    train, _, _ = data_preparation(config, create_dataset(config))
    ds = train._dataset
    hist, target = training_sequences(ds, 3)
    assert target.numel() == len(ds.inter_feat) - ds.user_num + 1  # every item but each user's first
    # Each row's most recent history item is the user's previous item in time.
    inter = ds.inter_feat
    order = np.lexsort((inter["timestamp"].numpy(), inter["user_id"].numpy()))
    users, items = inter["user_id"].numpy()[order], inter["item_id"].numpy()[order]
    same_user = users[1:] == users[:-1]
    assert hist[:, -1].tolist() == items[:-1][same_user].tolist()
    assert target.tolist() == items[1:][same_user].tolist()
    sem = build_semantic_ids(config, ds)
    assert sem.codes.shape == (ds.item_num, 3)


def test_dataset_without_item_file_falls_back_to_collaborative(workdir, caplog):
    write_synthetic_dataset(workdir / "data", "plain", with_item_file=False)
    config, ds = train_dataset(workdir / "data", "plain", load_col={"inter": ["user_id", "item_id", "timestamp"]},
                               tokenizer_cache_dir="")
    with caplog.at_level(logging.INFO):
        _, report = build_semantic_ids_with_report(config, ds)
    assert report.extra["feature source"] == "collaborative"
    assert "no item side information" in caplog.text


def test_items_without_side_info_are_counted(workdir, caplog):
    write_synthetic_dataset(workdir / "data", "gaps", n_items_without_side_info=4)
    config, ds = train_dataset(workdir / "data", "gaps", filter_inter_by_user_or_item=False, tokenizer_cache_dir="")
    with caplog.at_level(logging.INFO):
        sem, report = build_semantic_ids_with_report(config, ds)
    assert report.extra["items without side info"] == 4
    assert "4 of" in caplog.text and sem.n_items == ds.item_num


def test_named_float_seq_source_and_bad_sources(toy):
    config, ds = train_dataset(toy, "toy", mpq_feature_source="emb", tokenizer_cache_dir="")
    _, report = build_semantic_ids_with_report(config, ds)
    assert report.extra["feature source"] == "emb" and report.extra["feature dim"] == 8

    config, ds = train_dataset(toy, "toy", mpq_feature_source="image_emb", tokenizer_cache_dir="")
    with pytest.raises(ValueError, match=r"mpq_feature_source='image_emb'.*load_col"):
        build_semantic_ids(config, ds)
    config, ds = train_dataset(toy, "toy", mpq_feature_source="price", tokenizer_cache_dir="")
    with pytest.raises(TokenizerConfigError, match=r"mpq_feature_source='price' is a float field.*float_seq"):
        build_semantic_ids(config, ds)


def test_a_trained_models_item_embeddings_as_the_feature_source(toy, workdir):
    _, ds = train_dataset(toy, "toy", tokenizer_cache_dir="")
    table = torch.randn(ds.item_num + 1, 6)  # one row more than the catalogue, like BERT4Rec's mask token
    saved = workdir / "SASRec-toy.pth"
    torch.save({"config": {"dataset": "toy"}, "state_dict": {"item_embedding.weight": table}}, saved)
    config, ds = train_dataset(toy, "toy", mpq_feature_source=str(saved), tokenizer_cache_dir="")
    settings = TokenizerSettings.from_config(config)
    features = build_item_features(ds, settings)
    expected = table[: ds.item_num].clone()
    expected[0] = 0.0
    assert torch.equal(features.vectors, expected)
    _, report = build_semantic_ids_with_report(config, ds)
    assert report.extra["feature source"] == str(saved) and report.extra["feature dim"] == 6
    # the cache keys on the saved model's content: a model retrained to the same path misses
    before = dataset_fingerprint(ds, settings, str(saved))
    torch.save({"config": {"dataset": "toy"}, "state_dict": {"item_embedding.weight": table + 1}}, saved)
    assert dataset_fingerprint(ds, settings, str(saved)) != before

    def refused(state, match, config_part=None, path=saved):
        torch.save({"config": config_part or {"dataset": "toy"}, "state_dict": state}, saved)
        config, ds = train_dataset(toy, "toy", mpq_feature_source=str(path), tokenizer_cache_dir="")
        with pytest.raises(TokenizerConfigError, match=match):
            build_semantic_ids(config, ds)

    refused({"item_embedding.weight": table}, r"trained on dataset 'ml-1m', not 'toy'", {"dataset": "ml-1m"})
    refused({"user_embedding.weight": table}, r"no item-embedding table")
    refused({"item_embedding.weight": table[:5]}, r"fewer rows than the \d+ items")
    refused({"item_embedding.weight": table}, r"no such checkpoint file.*run_recbole.py --model=SASRec",
            path=workdir / "missing.pth")
    truncated = workdir / "truncated.pth"
    truncated.write_bytes(saved.read_bytes()[:100])
    refused({"item_embedding.weight": table}, r"mpq_feature_source=.*truncated.pth.*truncated or corrupted",
            path=truncated)


def test_non_numeric_float_values_are_named(workdir):
    folder = write_synthetic_dataset(workdir / "data", "bad")
    lines = (folder / "bad.item").read_text().splitlines()
    cells = lines[3].split("\t")
    cells[2] = "abc"
    (folder / "bad.item").write_text("\n".join(lines[:3] + ["\t".join(cells)] + lines[4:]) + "\n")
    with pytest.raises(AtomicFileError, match="price"):  # refused while loading
        train_dataset(workdir / "data", "bad")
    cells[2] = "inf"  # parses as a float, but no feature can use it
    (folder / "bad.item").write_text("\n".join(lines[:3] + ["\t".join(cells)] + lines[4:]) + "\n")
    config, ds = train_dataset(workdir / "data", "bad", mpq_feature_source="side_info", tokenizer_cache_dir="")
    with pytest.raises(TokenizerConfigError, match=r"item field 'price'.*non-numeric or infinite"):
        build_semantic_ids(config, ds)


def test_codebook_larger_than_catalogue_names_the_key(toy):
    config, ds = train_dataset(toy, "toy", codebook_size=500)
    with pytest.raises(ValueError, match=r"codebook_size=500 .*catalogue"):
        build_semantic_ids(config, ds)
    assert not Path("saved/semantic_ids").exists()


def test_cli_prints_the_report_and_reports_bad_keys(toy, monkeypatch, capsys):
    cli = load_entry_point("reg4rec")
    args = ["reg4rec.py", "tokenize", "--dataset=toy", f"--data_path={toy}", "--show_progress=False",
            "--n_codebooks=2", "--codebook_size=8", "--mpq_epochs=3", "--feature_dim=8", "--collab_dim=8"]
    monkeypatch.setattr(sys, "argv", args)
    assert cli.main(args[1:]) == 0
    out = capsys.readouterr().out
    assert "unique full token sets" in out and "perplexity" in out and "codes: (" in out

    args[args.index("--n_codebooks=2")] = "--n_codebooks=0"
    monkeypatch.setattr(sys, "argv", args)
    assert cli.main(args[1:]) == 2
    assert "n_codebooks" in capsys.readouterr().err
