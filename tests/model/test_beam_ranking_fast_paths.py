"""The ranking fast paths of REG4Rec's beam search against the full (traced) search: the search
run by ``full_sort_predict`` skips what item scores do not read (the decoder pass after the last
step, the reflection head, the heads of codebooks a path already emitted) and must give the same
beams and item scores; the catalogue-wide group and split tables equal the per-subset ones."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tiny_models import build_tiny
from test_beam_candidates import random_catalogue, random_step_fn
from recbole_reg4rec.model.beam_search import BeamConfig, corp_beam_search


@pytest.fixture(params=[(4, 5, 3, 4), (6, 2, 5)], ids=["M4", "M3"])
def tiny(request, monkeypatch, workdir):
    """An untrained tiny model with spread-out weights (peaked, tie-free distributions), eval mode."""
    model, _, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0, "score_mode": "fused"}, sizes=request.param, n_items=60)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    model.eval()
    inter = next(iter(test))[0]
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ][:8], inter[model.ITEM_SEQ_LEN][:8])
    return model, inter, ctx


SETTINGS = [
    {},
    {"reasoning_steps": 2},
    {"reflection_weight": 0.5},
    {"reflection_threshold": 0.3},
    {"score_mode": "tokens"},
    {"corp_enabled": False},
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_ranking_search_gives_the_traced_beams(tiny, settings):
    """``beam_search(trace=False)`` (used to rank) = the traced search: same paths, scores, counts
    and item scores; only the last step's reflection trace is left out."""
    model, _, ctx = tiny
    previous = model.configure_inference(**settings)
    try:
        with torch.no_grad():
            traced, prior_t, fallback_t = model.beam_search(ctx, trace=True)
            ranked, prior_r, fallback_r = model.beam_search(ctx, trace=False)
    finally:
        model.configure_inference(**previous)
    assert torch.equal(traced.codebooks, ranked.codebooks) and torch.equal(traced.tokens, ranked.tokens)
    torch.testing.assert_close(ranked.path_scores, traced.path_scores, rtol=1e-6, atol=1e-6)
    for name in ("pruned_catalogue", "pruned_reflection", "merged"):
        assert torch.equal(getattr(traced, name), getattr(ranked, name)), name
    fin = torch.isfinite(traced.item_scores)
    assert fin.any() and torch.equal(fin, torch.isfinite(ranked.item_scores))
    torch.testing.assert_close(ranked.item_scores[fin], traced.item_scores[fin], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fallback_r, fallback_t, rtol=0, atol=0)
    assert (prior_t is None) == (prior_r is None)
    assert torch.isfinite(traced.step_reflection).all()  # the traced search records every step
    # ranking computes the reflection head only where it scores paths
    scored = _reflection_scores(model, settings)
    assert bool(torch.isnan(ranked.step_reflection).all()) == (not scored)
    if scored:
        torch.testing.assert_close(ranked.step_reflection, traced.step_reflection, rtol=1e-6, atol=1e-6)


def _reflection_scores(model, settings) -> bool:
    return bool(settings.get("reflection_weight") or settings.get("reflection_threshold")) and \
        settings.get("corp_enabled", model.corp_enabled)


def test_full_sort_predict_ranks_as_the_traced_search(tiny):
    """The ranking of ``full_sort_predict`` equals the ranking rebuilt from the traced search."""
    from recbole_reg4rec.model.reg4rec import rank_beam_first

    model, inter, _ = tiny
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        scores = model.full_sort_predict(inter)
        traced, prior, fallback = model.beam_search(ctx, trace=True)
    w = model.item_fusion_weight
    expect = rank_beam_first(traced.item_scores + w * prior, fallback + w * prior)
    assert torch.equal(scores.topk(10, dim=1).indices, expect.topk(10, dim=1).indices)
    torch.testing.assert_close(scores, expect, rtol=1e-6, atol=1e-5)


def test_remaining_only_step_gives_the_full_step_on_codebooks_still_missing(tiny):
    model, _, ctx = tiny
    b, m = ctx.last.size(0), model.n_codebooks
    gen = torch.Generator().manual_seed(3)
    full = model.step_function(ctx)
    lean = model.step_function(ctx, reflection=False, remaining_only=True)
    with torch.no_grad():
        for s in range(m + 1):
            cb = torch.stack([torch.randperm(m, generator=gen)[:s] for _ in range(b * 5)]).view(b, 5, s)
            tok = (torch.rand(b, 5, s, generator=gen) * torch.tensor(model.codebook_sizes)[cb]).long()
            (lp_full, refl), (lp_lean, none) = full(cb, tok), lean(cb, tok)
            assert none is None and refl.shape == (b, 5)
            emitted = torch.zeros(b, 5, m, dtype=torch.bool).scatter_(2, cb, True)
            if 2 * s >= m:  # at most half the codebooks left: only their heads are computed
                assert torch.isneginf(lp_lean[emitted]).all()
            missing = ~emitted.unsqueeze(-1).expand_as(lp_full)
            assert torch.equal(torch.isfinite(lp_full[missing]), torch.isfinite(lp_lean[missing]))
            fin = missing & torch.isfinite(lp_full)
            torch.testing.assert_close(lp_lean[fin], lp_full[fin], rtol=1e-5, atol=1e-6)


def test_a_search_that_scores_reflection_refuses_a_step_function_without_it():
    index = random_catalogue(0, 30, (3, 4, 3))
    step = random_step_fn(0, 2, (3, 4, 3))

    def no_reflection(cb, tok):
        return step(cb, tok)[0], None

    cfg = BeamConfig(beam_size=5, reasoning_steps=3, reflection_weight=0.5)
    with pytest.raises(ValueError, match="step function gives none"):
        corp_beam_search(no_reflection, index, 2, cfg)
    untraced = dataclasses.replace(cfg, reflection_weight=0.0, trace=False)
    got = corp_beam_search(no_reflection, index, 2, untraced)
    ref = corp_beam_search(step, index, 2, dataclasses.replace(untraced, trace=True))
    assert torch.equal(got.tokens, ref.tokens) and torch.equal(got.item_scores, ref.item_scores)
    assert torch.isnan(got.step_reflection).all()


@pytest.mark.parametrize("seed", range(6))
def test_catalogue_wide_tables_equal_the_per_subset_ones(seed):
    """Subsets and splits appended in a random order: every (subset, group) segment holds that
    group's items, every (subset, codebook, group) split its tokens, counts and child groups."""
    sizes = (3, 4, 2, 3) if seed % 2 else (5, 3, 4)
    index = random_catalogue(seed, 40 + 9 * seed, sizes)
    m, d = len(sizes), index.max_size
    gen = torch.Generator().manual_seed(seed)
    for subset in torch.randperm(2 ** m, generator=gen).tolist():
        groups = index.subset_groups(subset)
        n_groups = groups.starts.numel() - 1
        g = torch.randperm(n_groups, generator=gen)
        lo, hi = index.group_segments(torch.full_like(g, subset), g)
        for i, gi in enumerate(g.tolist()):
            assert index.all_members[lo[i]:hi[i]].tolist() == groups.members[groups.starts[gi]:groups.starts[gi + 1]].tolist()
        for r in [r for r in range(m) if not subset >> r & 1]:
            parents = torch.arange(n_groups)
            expect_counts, expect_child = index.split_keys(subset, r).lookup(parents, d)
            s_, r_ = torch.full_like(parents, subset), torch.full_like(parents, r)
            lo, hi = index.split_lookup(s_, r_, parents)
            counts = torch.zeros(n_groups, d, dtype=torch.long)
            for p in range(n_groups):
                keys = index.all_splits.keys[lo[p]:hi[p]]
                counts[p, keys % d] = index.all_splits.counts[lo[p]:hi[p]]
            assert torch.equal(counts, expect_counts)
            for t in range(d):
                child = index.child_groups(s_, r_, parents, torch.full_like(parents, t))
                assert torch.equal(child, expect_child[:, t])
            assert (index.child_groups(s_, r_, torch.full_like(parents, -1), r_) == -1).all()


def _rank_beam_first_dense(beam_score, fallback):
    """The dense form of ``rank_beam_first`` (its earlier implementation): the reference."""
    reached = torch.isfinite(beam_score)
    reached[:, 0] = False
    fb = fallback.clone()
    fb[:, 0] = float("-inf")
    lowest_beam = torch.where(reached, beam_score, torch.full_like(beam_score, float("inf"))).min(dim=1).values
    fb_real = torch.where(torch.isfinite(fb), fb, torch.full_like(fb, float("-inf")))
    highest_fb = fb_real[:, 1:].max(dim=1).values
    shift = torch.where(reached.any(dim=1), (highest_fb - lowest_beam).clamp_min(0) + 1.0, torch.zeros_like(highest_fb))
    return torch.where(reached, beam_score + shift.unsqueeze(1), fb)


@pytest.mark.parametrize("seed", range(8))
def test_sparse_rank_beam_first_equals_the_dense_form(seed):
    """Same scores, bit for bit, with and without a bonus, on users with no reached item, with
    -inf / +inf / NaN fallbacks and -inf bonuses."""
    from recbole_reg4rec.model.reg4rec import rank_beam_first

    gen = torch.Generator().manual_seed(seed)
    b, n = 6, 40
    beam = torch.randn(b, n, generator=gen) * 3
    beam[torch.rand(b, n, generator=gen) < 0.8] = float("-inf")
    beam[0] = float("-inf")  # a user the beam reached nothing for
    fallback = torch.randn(b, n, generator=gen) * 3 - 1
    odd = torch.rand(b, n, generator=gen)
    if seed % 2:
        fallback[odd < 0.05] = float("-inf")
        fallback[(odd > 0.97) & (torch.arange(b) == 2).unsqueeze(1)] = float("nan")
        fallback[(odd > 0.97) & (torch.arange(b) == 3).unsqueeze(1)] = float("inf")
    bonus = torch.log_softmax(torch.randn(b, n, generator=gen), 1)
    bonus[:, 0] = float("-inf")
    bonus[1, :5] = float("-inf")
    for got, expect in (
        (rank_beam_first(beam, fallback), _rank_beam_first_dense(beam, fallback)),
        (rank_beam_first(beam, fallback, 2.0 * bonus), _rank_beam_first_dense(beam + 2.0 * bonus, fallback + 2.0 * bonus)),
    ):
        assert torch.equal(torch.isnan(got), torch.isnan(expect))
        fin = ~torch.isnan(expect)
        assert torch.equal(got[fin], expect[fin])
