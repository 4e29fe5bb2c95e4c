"""recbole_reg4rec.run: the one --key=value grammar, the sys.argv guard, the recipe and the metrics table."""

from __future__ import annotations

import sys

import pytest

from recbole_reg4rec.run import (
    OverrideError,
    make_config,
    metrics_table,
    parse_overrides,
    parse_value,
    prepare_run,
    seed_everything,
)


@pytest.mark.parametrize("text, value", [
    ("5", 5), ("1e-3", 1e-3), ("[5,10]", [5, 10]), ("{'hit': 1.0}", {"hit": 1.0}), ("None", None),
    ("True", True), ("false", False), ("NDCG@10", "NDCG@10"), ("", ""),
    ("{inter: [user_id, item_id]}", {"inter": ["user_id", "item_id"]}),  # yaml flow, as in a config file
    ("__import__('os').getcwd()", "__import__('os').getcwd()"),  # never evaluated
])
def test_values_are_typed_as_recbole_types_command_line_values(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_overrides_must_be_key_value():
    assert parse_overrides(["--epochs=5", "--topk=[5,10]"]) == {"epochs": 5, "topk": [5, 10]}
    for bad in (["stray"], ["--epochs"], ["--=5"]):
        with pytest.raises(OverrideError, match="Unrecognised argument"):
            parse_overrides(bad)


def test_config_ignores_the_command_line_and_the_recipe_builds_a_trainer(fast_sasrec_config, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=99"])
    config = make_config("SASRec", "toy", None, fast_sasrec_config)
    assert config["epochs"] == fast_sasrec_config["epochs"] and sys.argv == ["prog", "--epochs=99"]
    seed_everything(config)
    run = prepare_run(config)
    assert type(run.model).__name__ == "SASRec" and run.trainer.model is run.model
    assert run.train_data._dataset.item_num == run.dataset.item_num and run.model_init_s > 0


def test_metrics_table_has_one_row_per_metric_and_one_column_per_result():
    table = metrics_table({"best valid": {"recall@10": 0.1, "ndcg@10": 0.05}, "test": {"ndcg@10": 0.04}})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "best", "valid", "test"]
    assert lines[1].split() == ["recall@10", "0.1000"] and lines[2].split() == ["ndcg@10", "0.0500", "0.0400"]
