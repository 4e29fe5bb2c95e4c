"""CORP beam search against plain references: brute-force parity, consistency, CRSS choice."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.model.beam_search import (
    BeamConfig,
    corp_beam_search,
    exhaustive_item_scores,
    merge_equal_sets,
)
from recbole_reg4rec.model.crss import codebook_confidence


@pytest.fixture
def tiny(monkeypatch, workdir):
    model, train, test = build_tiny(monkeypatch, workdir, {"reflection_weight": 0.5, "score_mode": "fused"})
    model.eval()
    inter = next(iter(test))[0]
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ][:6], inter[model.ITEM_SEQ_LEN][:6])
    return model, ctx


def _wide(model, **kw) -> BeamConfig:
    cfg = dataclasses.replace(model.beam_config(), beam_size=120, pool_factor=4)
    return dataclasses.replace(cfg, **kw)


def _assert_parity(beam: torch.Tensor, ref: torch.Tensor) -> None:
    assert torch.equal(torch.isfinite(beam), torch.isfinite(ref))
    fin = torch.isfinite(ref)
    assert fin[:, 1:].any()
    torch.testing.assert_close(beam[fin], ref[fin], rtol=1e-4, atol=1e-4)
    # identical ranking of the reached items
    for u in range(ref.size(0)):
        items = fin[u].nonzero().squeeze(1)
        assert torch.equal(items[beam[u, items].argsort(descending=True)], items[ref[u, items].argsort(descending=True)])


@pytest.mark.parametrize(
    "kw",
    [
        {},  # greedy CRSS, full M steps, soft reflection penalty
        {"branch": 3},  # branch over every codebook: all orders, merged by token set
        {"reasoning_steps": 2, "branch": 2},  # completion scoring after L < M steps
        {"fixed_order": True, "reasoning_steps": 1},
        {"reflection_threshold": 0.5, "reflection_weight": 0.0, "branch": 2},
    ],
)
def test_wide_beam_matches_brute_force(tiny, kw):
    model, ctx = tiny
    cfg = _wide(model, **kw)
    step = model.step_function(ctx)
    b = ctx.last.size(0)
    with torch.no_grad():
        beam = corp_beam_search(step, model.catalogue(), b, cfg, model.item_log_prior(ctx)).item_scores
        ref = exhaustive_item_scores(step, model.catalogue(), b, cfg)
    _assert_parity(beam, ref)


def test_predict_path_score_matches_brute_force(tiny):
    model, ctx = tiny
    b = ctx.last.size(0)
    items = torch.arange(1, model.n_items).repeat(b, 1)  # [B, N-1]
    with torch.no_grad():
        ref = exhaustive_item_scores(model.step_function(ctx), model.catalogue(), b, _wide(model))
        got = torch.stack([model.path_scores(ctx, items[:, j]) for j in range(items.size(1))], dim=1)
    torch.testing.assert_close(got, ref[:, 1:], rtol=1e-4, atol=1e-4)


def test_full_sort_predict_with_wide_beam_ranks_like_brute_force(tiny):
    model, ctx = tiny
    model.beam_size, model.beam_pool_factor = 120, 4
    with torch.no_grad():
        scores = model._rank_chunk(ctx)
        ref = exhaustive_item_scores(model.step_function(ctx), model.catalogue(), ctx.last.size(0), _wide(model))
        ref = ref + model.item_fusion_weight * model.item_log_prior(ctx)
    assert torch.isfinite(scores[:, 1:]).all()
    assert torch.equal(scores[:, 1:].argsort(dim=1, descending=True), ref[:, 1:].argsort(dim=1, descending=True))


@pytest.mark.parametrize("branch", [1, 2])
def test_corp_never_returns_an_item_contradicting_its_path(tiny, branch):
    model, ctx = tiny
    index = model.catalogue()
    cfg = dataclasses.replace(model.beam_config(), beam_size=3, reasoning_steps=2, branch=branch)
    with torch.no_grad():
        res = corp_beam_search(model.step_function(ctx), index, ctx.last.size(0), cfg, model.item_log_prior(ctx))
    for u in range(ctx.last.size(0)):
        live = torch.isfinite(res.path_scores[u]).nonzero().squeeze(1).tolist()
        assert live
        paths = [(res.codebooks[u, k].tolist(), res.tokens[u, k].tolist()) for k in live]
        for cbs, toks in paths:  # every surviving path is catalogue-consistent
            assert len(index.consistent_items_reference(cbs, toks)) > 0
        reached = torch.isfinite(res.item_scores[u]).nonzero().squeeze(1).tolist()
        assert reached
        for item in reached:  # every returned item agrees with at least one path
            assert any(not index.contradicts(item, cbs, toks) for cbs, toks in paths)


def test_plain_beam_search_does_not_consult_the_catalogue_through_the_prior(tiny):
    """woCORP: items are matched only at the end. The fused prior of a path is the mass of its
    consistent catalogue items, so a plain search must rank paths without it."""
    model, ctx = tiny
    b = ctx.last.size(0)
    plain = dataclasses.replace(model.beam_config(), beam_size=3, reasoning_steps=2, corp=False, fusion_weight=4.0)
    step = model.step_function(ctx)
    with torch.no_grad():
        prior = model.item_log_prior(ctx)
        with_prior = corp_beam_search(step, model.catalogue(), b, plain, prior)
        without = corp_beam_search(step, model.catalogue(), b, plain, None)
        # a prior that favours one item strongly changes a CORP search ...
        skewed = torch.full_like(prior, -30.0)
        skewed[:, 5] = 0.0
        corp = dataclasses.replace(plain, corp=True)
        corp_plain = corp_beam_search(step, model.catalogue(), b, corp, None)
        corp_skewed = corp_beam_search(step, model.catalogue(), b, corp, skewed)
    # ... but never which paths a plain search keeps
    assert torch.equal(with_prior.tokens, without.tokens) and torch.equal(with_prior.codebooks, without.codebooks)
    torch.testing.assert_close(with_prior.item_scores, without.item_scores)
    assert not torch.equal(corp_plain.tokens, corp_skewed.tokens)


def test_crss_picks_the_most_confident_codebook(tiny):
    model, ctx = tiny
    step = model.step_function(ctx)
    b = ctx.last.size(0)
    cfg = dataclasses.replace(model.beam_config(), beam_size=5, reasoning_steps=2)
    with torch.no_grad():
        res = corp_beam_search(step, model.catalogue(), b, cfg)
        empty = torch.zeros(b, 1, 0, dtype=torch.long)
        conf0 = codebook_confidence(step(empty, empty)[0], "max")[:, 0]  # [B, M]
        assert torch.equal(res.codebooks[:, :, 0], conf0.argmax(dim=1, keepdim=True).expand(b, 5))
        # second step: the most confident codebook *given each path's own prefix*
        conf1 = codebook_confidence(step(res.codebooks[:, :, :1], res.tokens[:, :, :1])[0], "max")
        conf1 = conf1.scatter(2, res.codebooks[:, :, :1], float("-inf"))
        assert torch.equal(res.codebooks[:, :, 1], conf1.argmax(dim=2))
    assert (res.step_confidence > 0).all()


def test_merge_equal_sets_matches_plain_loop():
    torch.manual_seed(0)
    sets = torch.randint(0, 2, (3, 12, 3))
    score = torch.randn(3, 12).sort(dim=1, descending=True).values
    score[0, -1] = float("-inf")
    prior = torch.zeros(3, 12)
    merged, key, n_merged = merge_equal_sets(sets, score, prior)
    for u in range(3):
        seen = {}
        for p in range(12):
            seen.setdefault(tuple(sets[u, p].tolist()), []).append(p)
        for members in seen.values():
            expect = torch.logsumexp(score[u, members], dim=0)
            torch.testing.assert_close(merged[u, members[0]], expect)
            assert torch.isneginf(merged[u, members[1:]]).all()
        assert int(n_merged[u]) == sum(torch.isfinite(score[u, m[1:]]).sum().item() for m in seen.values())
