"""The cached step function (step keys/values per pair and per user, fused heads) against the
uncached one (the whole prefix decoded at every call): same log-probs, same beams."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.model.beam_search import corp_beam_search


@pytest.fixture(params=[1, 2], ids=["1-layer", "2-layer"])
def tiny(request, monkeypatch, workdir):
    model, _, test = build_tiny(
        monkeypatch, workdir, {"decoder_layers": request.param, "reflection_weight": 0.5}, sizes=(4, 5, 3)
    )
    model.eval()
    inter = next(iter(test))[0]
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ][:6], inter[model.ITEM_SEQ_LEN][:6])
    return model, ctx


def test_cached_step_gives_the_uncached_log_probs(tiny):
    model, ctx = tiny
    b, m = ctx.last.size(0), model.n_codebooks
    gen = torch.Generator().manual_seed(0)
    cached, plain = model.step_function(ctx), model.step_function(ctx, cached=False)
    with torch.no_grad():
        for s in range(m + 1):  # empty prefix up to every codebook emitted
            cb = torch.stack([torch.randperm(m, generator=gen)[:s] for _ in range(b * 7)]).view(b, 7, s)
            sizes = torch.tensor(model.codebook_sizes)[cb]
            tok = (torch.rand(b, 7, s, generator=gen) * sizes).long()
            lp_c, refl_c = cached(cb, tok)
            lp_p, refl_p = plain(cb, tok)
            fin = torch.isfinite(lp_p)
            assert torch.equal(fin, torch.isfinite(lp_c)) and not fin.all()  # codebooks of unequal size: pads
            torch.testing.assert_close(lp_c[fin], lp_p[fin], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(refl_c, refl_p, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [{}, {"branch": 2}, {"reasoning_steps": 2}])
def test_cached_step_gives_identical_beams(tiny, kw):
    model, ctx = tiny
    cfg = dataclasses.replace(model.beam_config(), beam_size=8, **kw)
    b = ctx.last.size(0)
    with torch.no_grad():
        prior = model.item_log_prior(ctx)
        fast = corp_beam_search(model.step_function(ctx), model.catalogue(), b, cfg, prior)
        slow = corp_beam_search(model.step_function(ctx, cached=False), model.catalogue(), b, cfg, prior)
    assert torch.equal(fast.codebooks, slow.codebooks) and torch.equal(fast.tokens, slow.tokens)
    torch.testing.assert_close(fast.path_scores, slow.path_scores, rtol=1e-5, atol=1e-5)
    fin = torch.isfinite(slow.item_scores)
    assert torch.equal(fin, torch.isfinite(fast.item_scores)) and fin.any()
    torch.testing.assert_close(fast.item_scores[fin], slow.item_scores[fin], rtol=1e-5, atol=1e-5)


def test_training_mode_steps_stay_uncached(tiny):
    """Dropout draws per path and step: the training-mode step function decodes the whole prefix."""
    model, ctx = tiny
    model.train()
    empty = torch.zeros(ctx.last.size(0), 1, 0, dtype=torch.long)
    torch.manual_seed(0)
    a = model.step_function(ctx)(empty, empty)[0]
    torch.manual_seed(0)
    c = model.step_function(ctx, cached=False)(empty, empty)[0]
    assert torch.equal(a, c)


def _planned_by_full_decodes(model, ctx, target):
    """Reference of CRSS order planning (greedy, no dropout): the whole prefix decoded per pass."""
    b, m = target.shape
    rows = torch.arange(b)
    order = torch.zeros(b, 1, 0, dtype=torch.long)
    emitted = torch.zeros(b, m, dtype=torch.bool)
    picked = []
    for _ in range(m - 1):
        tokens = target.gather(1, order.view(b, -1)).view(b, 1, -1)
        logits = model.token_logits(model.decode(ctx, order, tokens, last_only=True)[:, 0, -1])
        conf = torch.log_softmax(logits, dim=-1).max(dim=-1).values.masked_fill(emitted, float("-inf"))
        nxt = conf.argmax(dim=1)
        emitted[rows, nxt] = True
        picked.append(logits[rows, nxt])
        order = torch.cat([order, nxt.view(b, 1, 1)], dim=2)
    nxt = (~emitted).float().argmax(dim=1)
    picked.append(logits[rows, nxt])
    orders = torch.cat([order, nxt.view(b, 1, 1)], dim=2).view(b, m)
    step_logits = torch.stack(picked, dim=1).scatter(2, target.gather(1, orders).unsqueeze(-1), float("-inf"))
    return orders, step_logits.argmax(dim=-1)


def test_order_planning_with_step_tables_matches_full_decodes(tiny):
    model, ctx = tiny
    model.crss_warmup_epochs, model.crss_temperature, model._epoch = 0, 0.0, 1  # past the warm-up, greedy
    b = ctx.last.size(0)
    target = model.codes[torch.arange(1, b + 1)]
    with torch.no_grad():
        orders, proposals = model.plan_training_paths(ctx, target)
        ref_orders, ref_proposals = _planned_by_full_decodes(model, ctx, target)
    assert torch.equal(orders, ref_orders) and torch.equal(proposals, ref_proposals)
    assert not torch.equal(orders, torch.arange(3).expand(b, 3))  # the planning chose orders
