"""Rollouts steered by the item-ID head (``pars_rollout_steering``): paths are sampled as the fused
beam ranks them, the steering is part of the behaviour policy, and a model without an ID head
refuses the key before training."""

from __future__ import annotations

import copy

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.alignment import AlignmentSettings, RewardWeights, sample_batch
from recbole_reg4rec.alignment.rollout import first_step_masses, path_log_probs, sample_paths
from recbole_reg4rec.trainer import REG4RecTrainer

ALIGN = {"pars_epochs": 1, "pars_group_size": 4, "msra_horizon": 0}


@pytest.fixture
def tiny(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra=ALIGN)
    model.eval()
    inter = next(iter(train))
    return model, inter, model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])


def _token_sets(model, ro):
    return torch.full_like(ro.tokens, -1).scatter(2, ro.codebooks, ro.tokens)  # [B, G, M] token per codebook


def test_masses_equal_the_dense_sums_over_consistent_items(tiny):
    model, _, ctx = tiny
    index = model.catalogue()
    prob = model.item_log_prior(ctx).exp()  # [B, N]
    b, n = prob.shape
    start = first_step_masses(index, prob)  # [B, M, D]
    for r in range(model.n_codebooks):
        for t in range(index.max_size):
            holds = index.codes_t[r] == t
            holds[0] = False
            torch.testing.assert_close(start[:, r, t], (prob * holds).sum(1))
    # after one pair (codebook 0, token 1): the masses over the items that hold it
    user = torch.arange(b)
    candidates = index.postings_of(torch.zeros(b, dtype=torch.long), torch.ones(b, dtype=torch.long))
    weights = prob[user.unsqueeze(1), candidates] * (candidates > 0)
    got = index.candidate_token_sums(candidates, torch.full((b,), 2), weights)
    kept = (index.codes_t[0] == 1)
    kept[0] = False
    for t in range(index.max_size):
        torch.testing.assert_close(got[:, t], (prob * (kept & (index.codes_t[2] == t))).sum(1))


def test_strong_steering_samples_the_item_the_prior_names(tiny):
    model, _, ctx = tiny
    b, n = ctx.last.size(0), model.n_items
    favourite = (torch.arange(b) % (n - 1)) + 1  # a different item per context
    prob = torch.full((b, n), 1e-6).scatter(1, favourite.unsqueeze(1), 1.0)
    prob[:, 0] = 0.0
    prob = prob / prob.sum(1, keepdim=True)
    torch.manual_seed(0)
    ro = sample_paths(model, ctx, group_size=6, token_temperature=1.0, item_prob=prob, steering_weight=50.0)
    assert torch.equal(_token_sets(model, ro), model.codes[favourite].unsqueeze(1).expand(-1, 6, -1))
    torch.manual_seed(0)
    plain = sample_paths(model, ctx, group_size=6, token_temperature=1.0)  # without steering: other items too
    assert not torch.equal(_token_sets(model, plain), model.codes[favourite].unsqueeze(1).expand(-1, 6, -1))
    assert plain.steering is None and ro.steering.shape == (b, 6, model.n_codebooks, model.catalogue().max_size)


def test_steering_is_part_of_the_behaviour_policy(tiny):
    model, inter, ctx = tiny
    prob = model.item_log_prior(ctx).exp()
    torch.manual_seed(0)
    ro = sample_paths(model, ctx, group_size=5, token_temperature=0.5, item_prob=prob, steering_weight=2.0)
    with torch.no_grad():
        again, _ = path_log_probs(model, ctx, ro, temperature=0.5)  # re-scored with the stored steering
        unsteered, _ = path_log_probs(model, ctx, type(ro)(ro.codebooks, ro.tokens, ro.allowed, ro.logp), 0.5)
    torch.testing.assert_close(again, ro.logp, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(unsteered, ro.logp, atol=1e-3)
    # sample_batch steers by the model's own ID head when the setting is on; the reference sees the same steering
    settings = AlignmentSettings(group_size=5, clip_eps=0.2, kl_weight=0.05, sft_weight=0.0, reflection_weight=0.0,
                                 token_temperature=0.5, order_temperature=1.0, reward_weights=RewardWeights(1.0, 0.5, 0.1),
                                 msra_horizon=0, msra_gamma=1.0, rollout_steering=2.0)
    batch = sample_batch(model, copy.deepcopy(model), inter, settings)
    assert batch.rollouts.steering is not None
    torch.testing.assert_close(batch.logp_ref, batch.rollouts.logp, atol=1e-5, rtol=1e-5)


def test_steering_without_an_id_head_is_refused_before_training(monkeypatch, workdir):
    model, train, _ = build_tiny(monkeypatch, workdir / "data",
                                 extra={**ALIGN, "item_fusion_weight": 0, "pars_rollout_steering": 1.0})
    with pytest.raises(ValueError, match="pars_rollout_steering=1.0 steers rollouts by the item-ID head, but this "
                                         r"model has none \(item_fusion_weight: 0\): set pars_rollout_steering: 0"):
        REG4RecTrainer(train.config, model)


def test_negative_steering_is_refused():
    config = {"pars_group_size": 8, "pars_clip_eps": 0.2, "pars_kl_weight": 0.05, "pars_sft_weight": 1.0,
              "pars_reflection_weight": 0.5, "pars_token_temperature": 1.0, "pars_order_temperature": 1.0,
              "pars_reward_weights": {"hit": 1.0}, "msra_horizon": 2, "msra_gamma": 0.5, "pars_rollout_steering": -1}
    with pytest.raises(ValueError, match="pars_rollout_steering = -1.0 must be >= 0"):
        AlignmentSettings.from_config(config)
