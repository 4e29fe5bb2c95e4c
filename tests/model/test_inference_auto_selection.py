"""``auto`` inference settings: chosen on the validation split at the end of training, logged,
stored in the checkpoint; the test split is never read while choosing."""

from __future__ import annotations

import pytest

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from tiny_models import build_tiny, structured_codes, tiny_config
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.trainer import REG4RecTrainer
from recbole_reg4rec.trainer.inference_selection import FUSION_WEIGHTS, score_candidates, select_inference_settings

AUTO = {"score_mode": "auto", "item_fusion_weight": "auto", "reflection_weight": "auto", "reasoning_steps": "auto",
        "pars_enabled": False, "epochs": 1}


def _build_with_validation(monkeypatch, root, extra):
    """(model, train, valid, test) of REG4Rec on the tiny synthetic set (build_tiny drops valid)."""
    import recbole_reg4rec.model.reg4rec as reg

    monkeypatch.setattr(reg, "load_semantic_ids", lambda config, dataset, logger=None: structured_codes(dataset.item_num, (4, 4, 4)))
    config = Config(model="REG4Rec", dataset="tiny", config_dict=tiny_config(root, extra))
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    return reg.REG4Rec(config, train._dataset), train, valid, test


def _forbid(loader):
    """Make iterating ``loader`` fail the test (its class is swapped for a guarded subclass)."""
    original = type(loader)

    def guarded(self):
        raise AssertionError("the test split was read while choosing the inference settings")

    loader.__class__ = type("Forbidden" + original.__name__, (original,), {"__iter__": guarded})
    return lambda: setattr(loader, "__class__", original)


def test_selection_reads_validation_only_and_stores_the_choice(monkeypatch, workdir):
    model, train, valid, test = _build_with_validation(monkeypatch, workdir / "data", AUTO)
    trainer = REG4RecTrainer(train.config, model)
    allow_test = _forbid(test)  # the whole fit, selection included, must not read the test split
    trainer.fit(train, valid, verbose=False, saved=True)
    allow_test()
    chosen = trainer.chosen_inference["settings"]
    trials = trainer.chosen_inference["trials"]
    assert set(chosen) == {"score_mode", "item_fusion_weight", "reflection_weight", "reasoning_steps"}
    # the choice is the best validation score among the settings tried, and the ID head alone was tried
    assert max(s for _, s in trials) == next(s for t, s in trials if all(t[k] == v for k, v in chosen.items()))
    assert any(t["score_mode"] == "id" for t, _ in trials)
    assert {k: model.inference_settings()[k] for k in chosen} == chosen
    # stored in the best-model checkpoint: the test evaluation and load_data_and_model get it
    saved = load_checkpoint(trainer.saved_model_file)
    assert saved["other_parameter"]["inference_settings"] == model.inference_settings()
    model.configure_inference(score_mode="tokens", reasoning_steps=1)
    trainer.evaluate(test, load_best_model=True)
    assert {k: model.inference_settings()[k] for k in chosen} == chosen


def test_the_guard_catches_a_selection_that_reads_the_test_split(monkeypatch, workdir):
    """The guard of the test above is live: a selection handed the guarded loader fails."""
    model, train, valid, test = _build_with_validation(monkeypatch, workdir / "data", AUTO)
    trainer = REG4RecTrainer(train.config, model)
    allow_test = _forbid(test)
    with pytest.raises(AssertionError, match="the test split was read"):
        trainer.choose_auto_inference(test, saved=False)
    assert trainer.choose_auto_inference(valid, saved=False)  # the validation loader is fine
    allow_test()


def test_selection_never_falls_below_the_id_head_on_validation(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir / "data", AUTO)
    candidates = score_candidates(model)
    assert {"score_mode": "id"} in candidates and {"score_mode": "tokens"} in candidates
    assert [c["item_fusion_weight"] for c in candidates if c["score_mode"] == "fused"] == list(FUSION_WEIGHTS)
    scores = {"id": 0.5, "fused": 0.3, "blend": 0.4, "tokens": 0.1}

    def evaluate():  # a fake validation score: the ID head wins, reflection and L do not matter
        return scores[model.score_mode]

    chosen, trials = select_inference_settings(model, evaluate)
    assert chosen["score_mode"] == "id" and model.score_mode == "id"
    assert len(trials) == len(candidates)  # the ID head runs no search: no reflection weight or L tried
    scores.update(fused=0.6)  # fused wins: blend is tried at its w, then reflection weights and L
    chosen, trials = select_inference_settings(model, evaluate)
    assert chosen["score_mode"] == "fused" and chosen["item_fusion_weight"] == FUSION_WEIGHTS[0]
    assert any(t["score_mode"] == "blend" for t, _ in trials)
    assert {t["reasoning_steps"] for t, _ in trials} == set(range(1, model.n_codebooks + 1))


def test_only_auto_settings_are_searched(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir / "data", {"score_mode": "blend", "item_fusion_weight": 2.0,
                                                            "reflection_weight": 0.0, "reasoning_steps": "auto"})
    assert model.auto_inference == ("reasoning_steps",)
    seen = []

    def evaluate():
        seen.append(model.inference_settings())
        return float(model.reasoning_steps == 2)

    chosen, _ = select_inference_settings(model, evaluate)
    assert chosen == {"reasoning_steps": 2} and len(seen) == model.n_codebooks
    assert all(s["score_mode"] == "blend" and s["item_fusion_weight"] == 2.0 for s in seen)


def test_fit_without_validation_data_keeps_the_provisional_settings(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", AUTO)
    trainer = REG4RecTrainer(train.config, model)
    warnings = []
    monkeypatch.setattr(trainer.logger, "warning", lambda message, *a, **k: warnings.append(str(message)))
    before = model.inference_settings()
    trainer.fit(train, None, verbose=False, saved=False)
    assert model.inference_settings() == before and not hasattr(trainer, "chosen_inference")
    assert any("fit() got no validation data: score_mode=auto" in w for w in warnings)
