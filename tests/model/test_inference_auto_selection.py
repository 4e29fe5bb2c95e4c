"""``auto`` inference settings: chosen on the validation split at the end of training, logged,
stored in the checkpoint; the test split is never read while choosing."""

from __future__ import annotations

import numpy as np
import pytest

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from tiny_models import build_tiny, structured_codes, tiny_config
from recbole_reg4rec.compat.checkpoints import load_checkpoint
from recbole_reg4rec.trainer import REG4RecTrainer
from recbole_reg4rec.trainer.inference_selection import (
    FUSION_WEIGHTS,
    MIN_GAIN_STANDARD_ERRORS,
    paired_gain,
    score_candidates,
    select_inference_settings,
)

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
    assert set(chosen) == {"score_mode", "item_fusion_weight", "first_step_weight", "reflection_weight", "reasoning_steps"}
    # the choice is the best validation score among the settings tried, and the ID head alone was tried
    assert max(s for _, s in trials) == next(s for t, s in trials if all(t[k] == v for k, v in chosen.items()))
    assert any(t["score_mode"] == "id" for t, _ in trials)
    assert {k: model.inference_settings()[k] for k in chosen} == chosen
    # without stage 2, the validation result fit reports is that of the chosen settings (the ones test uses),
    # not the provisional ranking stage 1 was validated with
    best = max(s for _, s in trials)
    assert trainer.best_valid_score == pytest.approx(best, abs=1e-4)
    assert trainer.best_valid_result[trainer.valid_metric.lower()] == trainer.best_valid_score
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
                                                            "first_step_weight": 0.0, "reflection_weight": 0.0,
                                                            "reasoning_steps": "auto"})
    assert model.auto_inference == ("reasoning_steps",)
    seen = []

    def evaluate():
        seen.append(model.inference_settings())
        return float(model.reasoning_steps == 2)

    chosen, _ = select_inference_settings(model, evaluate)
    assert chosen == {"reasoning_steps": 2} and len(seen) == model.n_codebooks
    assert all(s["score_mode"] == "blend" and s["item_fusion_weight"] == 2.0 for s in seen)


def test_nothing_to_choose_when_the_id_head_alone_ranks(monkeypatch, workdir):
    """Only reasoning knobs auto and score_mode id fixed: no setting acts, the choice keeps them and says so."""
    fixed = {"score_mode": "id", "item_fusion_weight": 2.0, "reflection_weight": 0.0, "reasoning_steps": None,
             "first_step_weight": "auto", "pars_enabled": False, "epochs": 1}
    model, train, valid, _ = _build_with_validation(monkeypatch, workdir / "data", fixed)
    assert model.auto_inference == ("first_step_weight",)
    trainer = REG4RecTrainer(train.config, model)
    messages = []
    monkeypatch.setattr(trainer.logger, "info", lambda message, *a, **k: messages.append(str(message)))
    trainer.fit(train, valid, verbose=False, saved=True)
    assert trainer.chosen_inference == {"settings": {"first_step_weight": 0.0}, "trials": []}
    assert any("nothing to choose on validation" in m for m in messages)


def test_fit_without_validation_data_keeps_the_provisional_settings(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", AUTO)
    trainer = REG4RecTrainer(train.config, model)
    warnings = []
    monkeypatch.setattr(trainer.logger, "warning", lambda message, *a, **k: warnings.append(str(message)))
    before = model.inference_settings()
    trainer.fit(train, None, verbose=False, saved=False)
    assert model.inference_settings() == before and not hasattr(trainer, "chosen_inference")
    assert any("fit() got no validation data: score_mode=auto" in w for w in warnings)


def test_secondary_knobs_leave_their_neutral_value_only_beyond_noise(monkeypatch, workdir):
    """First-step weight, reflection weight and L move from 0 / 0 / M only when the paired per-user gain
    on validation exceeds one standard error; a gain within noise keeps the neutral value."""
    model, _, _ = build_tiny(monkeypatch, workdir, {**AUTO, "score_mode": "fused", "item_fusion_weight": 2.0})
    rng = np.random.default_rng(0)
    base = rng.random(400)
    noise = rng.normal(0.0, 0.05, 400)
    gains = {}

    def evaluate():  # per-user validation values; u = 1 gains 0.03, reflection 1 gains 0.002 on average, L = 1 0.05
        gain = gains.get(("reflection", model.reflection_weight), 0.0) + gains.get(("L", model.reasoning_steps), 0.0)
        gain += gains.get(("u", model.first_step_weight), 0.0)
        noisy = model.reflection_weight == 1.0
        return base + gain + (noise if noisy else 0.0)

    gains.update({("reflection", 1.0): 0.002, ("L", 1): 0.05, ("u", 1.0): 0.03})
    chosen, trials = select_inference_settings(model, evaluate)
    assert chosen["first_step_weight"] == 1.0  # beyond noise: taken
    at_m = {t["reflection_weight"]: s for t, s in trials if t["reasoning_steps"] == model.n_codebooks}
    assert at_m[1.0] > at_m[0.0]  # the better mean ...
    assert chosen["reflection_weight"] == 0.0  # ... within noise: kept neutral
    assert chosen["reasoning_steps"] == 1  # a gain far beyond noise is taken
    mean_gain, se = paired_gain(base + 0.002 + noise, base)
    assert 0 < mean_gain <= MIN_GAIN_STANDARD_ERRORS * se

    # a plain float score (no per-user values) keeps the plain best score
    chosen, _ = select_inference_settings(model, lambda: float(np.mean(evaluate())))
    assert chosen["reflection_weight"] == 1.0


def test_beam_width_is_the_narrowest_that_ranks_validation_no_worse(monkeypatch, workdir):
    """``beam_size: auto`` starts at the widest width (the other knobs are chosen there) and keeps
    the narrowest width whose per-user validation values are on average not below the widest's."""
    model, _, _ = build_tiny(monkeypatch, workdir, {**AUTO, "beam_size": "auto"}, n_items=60)
    assert model.beam_sizes() == [5, 20, 30, 50] and model.beam_size == 50  # topk [5]; widest until chosen
    base = np.random.default_rng(1).random(300)
    loss = {}
    widths = []

    def evaluate():
        if model.score_mode != "id":
            widths.append(model.beam_size)
        return base - loss.get(model.beam_size, 0.0) + 0.1 * (model.score_mode == "fused")

    loss.update({5: 0.01, 20: 0.0, 30: 0.0})  # 20 and 30 rank as 50 does, 5 loses
    chosen, _ = select_inference_settings(model, evaluate)
    assert chosen["beam_size"] == 20 and model.beam_size == 20
    assert set(widths[:-3]) == {50}  # score mode, w, reflection, L: all chosen at the widest beam
    loss.update({20: 1e-4, 30: 1e-4})  # any loss, however small, keeps the wider beam
    assert select_inference_settings(model, evaluate)[0]["beam_size"] == 50
    # the ID head alone runs no search: the width is not searched and stays the widest
    chosen, _ = select_inference_settings(model, lambda: base + 0.1 * (model.score_mode == "id"))
    assert chosen["score_mode"] == "id" and chosen["beam_size"] == 50
    with pytest.raises(ValueError, match=f"beam_size={model.n_items} is larger than the catalogue"):
        model.configure_inference(beam_size=model.n_items)


def test_the_search_starts_from_the_provisional_settings(monkeypatch, workdir):
    """Whatever the model holds (e.g. settings chosen earlier), the search is the same."""
    model, _, _ = build_tiny(monkeypatch, workdir, AUTO)

    def run():
        seen = []

        def evaluate():
            seen.append(model.inference_settings())
            return float(model.score_mode == "fused") + 0.01 * model.reasoning_steps

        return select_inference_settings(model, evaluate)[0], seen

    first, seen_first = run()
    model.configure_inference(reflection_weight=2.0, reasoning_steps=1, score_mode="tokens")
    second, seen_second = run()
    assert first == second and seen_first == seen_second
    assert seen_first[0]["reflection_weight"] == 0.0 and seen_first[0]["reasoning_steps"] == model.n_codebooks


def test_per_user_values_average_to_recboles_metric(monkeypatch, workdir):
    model, train, valid, _ = _build_with_validation(monkeypatch, workdir / "data", AUTO)
    trainer = REG4RecTrainer(train.config, model)
    trainer.fit(train, valid, verbose=False, saved=False)
    model.configure_inference(score_mode="fused", item_fusion_weight=2.0)
    values = trainer.validation_values(valid)
    result = trainer.evaluate(valid, load_best_model=False)
    assert values.ndim == 1 and len(values) == len(valid._dataset)  # one value per validation user
    assert values.max() > 0  # some hits, so the equality below is not 0 == 0
    assert float(values.mean()) == pytest.approx(result[trainer.valid_metric.lower()], abs=5.1e-5)  # RecBole rounds to 4 places


def test_stage2_validates_under_the_settings_chosen_for_stage1(monkeypatch, workdir):
    model, train, valid, _ = _build_with_validation(
        monkeypatch, workdir / "data", {**AUTO, "pars_enabled": True, "pars_epochs": 1, "pars_group_size": 2})
    trainer = REG4RecTrainer(train.config, model)
    validated, choices, bars = [], [], []
    valid_epoch, choose, rescore = trainer._valid_epoch, trainer.choose_auto_inference, trainer._rescore_stage1

    def recording_valid(valid_data, show_progress=False):
        validated.append((trainer.stage, model.inference_settings()))
        return valid_epoch(valid_data, show_progress)

    def recording_choice(valid_data, saved=True):
        choices.append(dict(choose(valid_data, saved)))
        return choices[-1]

    def recording_rescore(valid_data):
        rescore(valid_data)
        bars.append((trainer.best_valid_score, float(trainer.validation_values(valid_data).mean())))

    monkeypatch.setattr(trainer, "_valid_epoch", recording_valid)
    monkeypatch.setattr(trainer, "choose_auto_inference", recording_choice)
    monkeypatch.setattr(trainer, "_rescore_stage1", recording_rescore)
    trainer.fit(train, valid, verbose=False, saved=True)
    stage1 = [s for stage, s in validated if stage == 1]
    stage2 = [s for stage, s in validated if stage == 2]
    assert stage1 and all(s["score_mode"] == "id" for s in stage1)  # provisional: the ID head alone
    assert choices and stage2 and all({k: s[k] for k in choices[0]} == choices[0] for s in stage2)
    # the bar stage 2 must beat is stage 1's best model scored under those settings
    assert len(bars) == 1 and bars[0][0] == pytest.approx(bars[0][1], abs=5.1e-5)
