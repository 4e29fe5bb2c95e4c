"""PARS as a clipped policy-gradient method: importance ratios against the behaviour policy that
sampled the paths, log-probs and KL at the sampling temperature, a clip that acts."""

from __future__ import annotations

import copy

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.alignment import AlignmentSettings, RewardWeights, batch_loss, sample_batch
from recbole_reg4rec.alignment.rollout import path_log_probs, sample_paths
from recbole_reg4rec.trainer import REG4RecTrainer

ALIGN = {"pars_epochs": 1, "pars_group_size": 4, "msra_horizon": 0}


def _settings(**kw) -> AlignmentSettings:
    base = dict(group_size=6, clip_eps=0.2, kl_weight=0.05, sft_weight=0.0, reflection_weight=0.0,
                token_temperature=0.5, order_temperature=1.0, reward_weights=RewardWeights(1.0, 0.5, 0.1),
                msra_horizon=0, msra_gamma=1.0, inner_steps=4)
    base.update(kw)
    return AlignmentSettings(**base)


@pytest.fixture
def tiny(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra=ALIGN)
    model.eval()
    return model, next(iter(train))


def test_behaviour_log_probs_are_taken_at_the_sampling_temperature(tiny):
    model, inter = tiny
    ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
    torch.manual_seed(0)
    ro = sample_paths(model, ctx, group_size=5, token_temperature=0.5)
    with torch.no_grad():
        at_half, _ = path_log_probs(model, ctx, ro, temperature=0.5)
        at_one, _ = path_log_probs(model, ctx, ro, temperature=1.0)
    torch.testing.assert_close(at_half, ro.logp, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(at_one, ro.logp, atol=1e-3)


def test_reference_scores_the_paths_at_the_same_temperature(tiny):
    model, inter = tiny
    reference = copy.deepcopy(model)
    torch.manual_seed(1)
    batch = sample_batch(model, reference, inter, _settings())
    # the reference is the policy itself here: same log-probs at the sampling temperature, KL 0
    torch.testing.assert_close(batch.logp_ref, batch.rollouts.logp, atol=1e-5, rtol=1e-5)
    assert float(batch_loss(model, batch, _settings())["kl"]) == pytest.approx(0.0, abs=1e-6)


def test_ratio_moves_and_the_clip_acts_after_inner_updates(tiny):
    model, inter = tiny
    reference = copy.deepcopy(model)
    settings = _settings()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    torch.manual_seed(2)
    batch = sample_batch(model, reference, inter, settings)
    behaviour = batch.rollouts.logp.clone()
    stats = []
    for _ in range(settings.inner_steps):
        optimizer.zero_grad()
        out = batch_loss(model, batch, settings)
        out["loss"].backward()
        optimizer.step()
        stats.append({k: float(out[k]) for k in ("ratio_deviation", "clip_fraction", "kl")})
    assert stats[0]["ratio_deviation"] < 1e-5 and stats[0]["clip_fraction"] == 0.0  # the behaviour policy itself
    assert stats[1]["ratio_deviation"] > 1e-3  # ratio != 1 after one inner update
    assert max(s["clip_fraction"] for s in stats[1:]) > 0.0  # the clip acts
    assert stats[-1]["kl"] > 0.0
    assert torch.equal(batch.rollouts.logp, behaviour)  # the behaviour log-probs are a snapshot
    with torch.no_grad():
        now, _ = path_log_probs(model, model.encode(batch.item_seq, batch.item_seq_len), batch.rollouts, 0.5)
    assert not torch.allclose(now, behaviour, atol=1e-3)


def test_rewards_are_computed_once_per_batch(tiny):
    model, inter = tiny
    reference = copy.deepcopy(model)
    settings = _settings(inner_steps=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    torch.manual_seed(3)
    batch = sample_batch(model, reference, inter, settings)
    assert batch.advantages is None
    batch_loss(model, batch, settings)["loss"].backward()
    advantages = batch.advantages.clone()
    optimizer.step()
    batch_loss(model, batch, settings)
    assert torch.equal(batch.advantages, advantages)


def test_alignment_epoch_logs_a_clip_fraction_above_zero(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={
        **ALIGN, "epochs": 1, "pars_inner_steps": 4, "pars_learning_rate": 0.05, "pars_token_temperature": 0.5,
    })
    trainer = REG4RecTrainer(train.config, model)
    assert trainer.pars_settings.inner_steps == 4
    trainer.fit(train, None, verbose=False, saved=False)
    stats = trainer.last_alignment_stats
    assert trainer.stage == 2 and stats["clip_fraction"] > 0.0 and stats["ratio_deviation"] > 0.0


def test_inner_steps_below_one_are_refused(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "pars_inner_steps": 0})
    with pytest.raises(ValueError, match="pars_inner_steps = 0 must be >= 1"):
        REG4RecTrainer(train.config, model)



def test_supervised_term_with_dropout_runs_in_train_mode_and_restores_eval_mode(monkeypatch, workdir):
    """``pars_sft_dropout``: the kept supervised loss sees dropout (its value changes with the
    dropout draws, unlike the dropout-free policy pass) and the model leaves it in eval mode, its
    epoch count (the CRSS warm-up) unchanged."""
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={**ALIGN, "hidden_dropout_prob": 0.3})
    model.eval()
    inter = next(iter(train))
    torch.manual_seed(3)
    batch = sample_batch(model, copy.deepcopy(model), inter, _settings())
    epoch = model._epoch

    def loss(flag: bool, seed: int) -> float:
        torch.manual_seed(seed)  # the same CRSS training orders at the same seed
        with torch.no_grad():
            return float(batch_loss(model, batch, _settings(sft_weight=1.0, kl_weight=0.0, sft_dropout=flag))["loss"])

    assert loss(False, 5) == loss(False, 5) and loss(True, 5) == loss(True, 5)  # seeded: reproducible
    assert loss(True, 5) != loss(False, 5)  # dropout acts on the supervised term
    assert not any(m.training for m in model.modules()) and model._epoch == epoch


def test_policy_weight_zero_leaves_only_the_other_terms(tiny):
    """``pars_policy_weight: 0`` (with KL and reflection off) drops the GRPO objective: what remains
    is the supervised term alone, the control that isolates what the policy gradient adds."""
    model, inter = tiny
    torch.manual_seed(4)
    batch = sample_batch(model, copy.deepcopy(model), inter, _settings())
    with torch.no_grad():
        batch_loss(model, batch, _settings())  # the first update fixes the batch's advantages
        assert batch_loss(model, batch, _settings(policy_weight=0.0, kl_weight=0.0))["loss"].item() == 0.0
        torch.manual_seed(8)
        sft_only = batch_loss(model, batch, _settings(policy_weight=0.0, kl_weight=0.0, sft_weight=1.0))["loss"].item()
        torch.manual_seed(8)  # the same CRSS training orders
        assert sft_only == pytest.approx(model.calculate_loss(inter).item(), rel=1e-5)
        assert batch_loss(model, batch, _settings(kl_weight=0.0))["loss"].item() != 0.0
