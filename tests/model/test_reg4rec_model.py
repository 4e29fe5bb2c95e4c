"""REG4Rec model: decoder set invariance, CRSS training orders, losses, ranking output, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tiny_models import build_tiny
from recbole_reg4rec.model.catalogue_index import CatalogueIndex
from recbole_reg4rec.model.crss import (
    codebook_confidence,
    inverse_permutation,
    sample_next_codebook,
    select_codebooks,
)
from recbole_reg4rec.model.reg4rec import rank_beam_first


@pytest.fixture
def tiny(monkeypatch, workdir):
    return build_tiny(monkeypatch, workdir, {"score_mode": "fused"})  # ranked by the reasoning (auto: ID head until chosen)


def _ctx(model, data, n=5):
    inter = next(iter(data))
    inter = inter[0] if isinstance(inter, tuple) else inter
    return model.encode(inter[model.ITEM_SEQ][:n], inter[model.ITEM_SEQ_LEN][:n]), inter


def test_decoder_state_depends_on_the_token_set_not_the_order(tiny):
    model, train, _ = tiny
    model.eval()
    ctx, _ = _ctx(model, train)
    b = ctx.last.size(0)
    cb = torch.tensor([0, 1, 2]).expand(b, 1, 3)
    tok = torch.tensor([3, 1, 2]).expand(b, 1, 3)
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = model.decode(ctx, cb, tok)[:, :, -1]
        c = model.decode(ctx, cb[..., perm], tok[..., perm])[:, :, -1]
        d = model.decode(ctx, cb[..., :2], tok[..., :2])[:, :, -1]
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a, d)  # but it does depend on the tokens
    with torch.no_grad():  # the fast inference path computes the same last state
        fast = model.decode(ctx, cb, tok, last_only=True)
    assert fast.shape == (b, 1, 1, a.size(-1))
    torch.testing.assert_close(fast[:, :, 0], a, rtol=1e-5, atol=1e-5)


def test_reflection_negatives_carry_one_proposed_token():
    from recbole_reg4rec.model.reg4rec import REG4Rec

    torch.manual_seed(0)
    tokens = torch.randint(0, 5, (50, 4))
    proposals = (tokens + 1) % 5
    neg, labels = REG4Rec.negative_paths(tokens, proposals)
    changed = neg != tokens
    assert (changed.sum(dim=1) == 1).all()
    k = changed.float().argmax(dim=1)
    assert torch.equal(neg[torch.arange(50), k], proposals[torch.arange(50), k])
    steps = torch.arange(4).unsqueeze(0)
    assert torch.equal(labels, (steps < k.unsqueeze(1)).float())  # prefixes with the wrong token are negatives


def test_crss_helpers():
    conf = torch.tensor([[0.2, 0.9, 0.5], [0.8, 0.1, 0.3]])
    emitted = torch.tensor([[False, True, False], [False, True, False]])
    assert select_codebooks(conf, emitted, 1).squeeze(1).tolist() == [2, 0]
    assert select_codebooks(conf, emitted, 5).tolist() == [[2, 0], [0, 2]]
    assert sample_next_codebook(conf, emitted, 0.0).tolist() == [2, 0]
    torch.manual_seed(0)
    draws = torch.stack([sample_next_codebook(conf, emitted, 1.0) for _ in range(200)])
    assert not (draws == 1).any() and (draws[:, 0] == 0).any() and (draws[:, 0] == 2).any()
    lp = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))
    assert codebook_confidence(lp, "max").argmax().item() == 0
    assert codebook_confidence(lp, "margin").tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    assert codebook_confidence(lp, "entropy")[0] > codebook_confidence(lp, "entropy")[1]
    order = torch.tensor([[2, 0, 1]])
    assert inverse_permutation(order).tolist() == [[1, 2, 0]]


def test_training_orders_follow_crss(tiny):
    model, train, _ = tiny
    model.train()  # epoch 0: warm-up, random orders
    ctx, inter = _ctx(model, train, n=64)
    target = model.codes[inter[model.POS_ITEM_ID][:64]]
    warm = model.sample_training_orders(ctx, target)
    assert torch.equal(warm.sort(dim=1).values, torch.arange(3).expand_as(warm))
    model.crss_warmup_epochs = 0
    model.crss_temperature = 0.0  # greedy: first codebook = most confident at the empty prefix
    model.eval()  # no dropout, deterministic
    with torch.no_grad():
        orders = model.sample_training_orders(ctx, target)
        empty = torch.zeros(64, 1, 0, dtype=torch.long)
        conf = codebook_confidence(model.step_function(ctx)(empty, empty)[0], "max")[:, 0]
    assert torch.equal(orders[:, 0], conf.argmax(dim=1))
    assert torch.equal(orders.sort(dim=1).values, torch.arange(3).expand_as(orders))
    model.fixed_order = True
    assert torch.equal(model.sample_training_orders(ctx, target), torch.arange(3).expand(64, 3))


def test_loss_counts_every_remaining_codebook():
    class Stub:
        token_loss = staticmethod(lambda *a: None)

    from recbole_reg4rec.model.reg4rec import REG4Rec

    b, m, d = 2, 3, 4
    logits = torch.zeros(b, m, m, d)
    target = torch.tensor([[0, 1, 2], [3, 3, 3]])
    orders = torch.tensor([[0, 1, 2], [2, 1, 0]])
    # uniform logits: every CE term is log(d), the mean must be log(d) too
    loss = REG4Rec.token_loss(Stub(), logits, target, orders)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item(), rel=1e-5)
    # make the already-emitted codebooks' predictions terrible: they must not count
    logits[0, 1, 0] = torch.tensor([-50.0, 50, 50, 50])  # codebook 0 emitted before step 1
    assert REG4Rec.token_loss(Stub(), logits, target, orders).item() == pytest.approx(loss.item(), rel=1e-5)


def test_training_reduces_the_loss(tiny):
    model, train, _ = tiny
    model.train()
    batch = next(iter(train))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = model.calculate_loss(batch).item()
    for _ in range(12):
        opt.zero_grad()
        model.calculate_loss(batch).backward()
        opt.step()
    assert model.calculate_loss(batch).item() < 0.7 * first


def test_composed_item_head_scores_items_by_their_token_embeddings(tiny):
    """Item ``i``'s composed logit is the user state dotted with the sum of its token embeddings (no
    ID embedding); the padding item is -inf; the loss term trains the encoder and token embeddings,
    not the decoder's heads, and once on, the composed head is the first-step score."""
    model, train, _ = tiny
    model.eval()
    ctx, inter = _ctx(model, train)
    composed = model.composed_item_logits(ctx.last)  # [B, N]
    assert composed.shape == (ctx.last.size(0), model.n_items) and torch.isneginf(composed[:, 0]).all()
    table = model.token_embedding.embedding.weight
    for item in (1, 7, model.n_items - 1):
        embedding = sum(table[model.token_embedding.offsets[r] + model.codes[item, r]] for r in range(model.n_codebooks))
        torch.testing.assert_close(composed[:, item], ctx.last @ embedding)
    with torch.no_grad():
        result, _, first_step = model.beam_search(ctx, trace=False)
    torch.testing.assert_close(first_step, model.item_token_sums(result.start_log_probs))
    plain = model.calculate_loss(inter).item()
    model.composed_item_loss_weight = 1.0
    with torch.no_grad():
        _, _, first_step = model.beam_search(ctx, trace=False)  # now the composed head's item log-probabilities
    torch.testing.assert_close(first_step, torch.log_softmax(composed, dim=-1))
    torch.manual_seed(0)
    loss = model.calculate_loss(inter)
    assert torch.isfinite(loss) and loss.item() > plain  # a cross-entropy over N items is added
    model.zero_grad()
    (model.composed_item_loss_weight * F.cross_entropy(model.composed_item_logits(model.encode(
        inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN]).last), inter[model.POS_ITEM_ID])).backward()
    assert model.token_embedding.embedding.weight.grad.abs().sum() > 0
    assert model.heads.proj.weight.grad is None  # the beam's heads keep their own objective


def test_full_sort_predict_ranks_every_item(tiny):
    model, _, test = tiny
    model.eval()
    inter = next(iter(test))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(inter)
        result = model.beam_search(model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN]))[0]
    assert scores.shape == (inter.length, model.n_items)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()
    reached = torch.isfinite(result.item_scores)
    for u in range(scores.size(0)):  # beam items first
        assert scores[u, reached[u]].min() > scores[u, 1:][~reached[u, 1:]].max()
    with torch.no_grad():
        pred = model.predict(_with_items(inter, model, 1))
    assert pred.shape == (inter.length,) and torch.isfinite(pred).all()


def _with_items(inter, model, item):
    inter.update(type(inter)({model.ITEM_ID: torch.full((inter.length,), item)}))
    return inter


def test_rank_beam_first_keeps_both_orders():
    beam = torch.tensor([[float("-inf"), -5.0, float("-inf"), -7.0, float("-inf")]])
    fallback = torch.tensor([[0.0, -1.0, -0.5, -2.0, -3.0]])
    out = rank_beam_first(beam, fallback)
    assert out.argsort(descending=True)[0].tolist()[:4] == [1, 3, 2, 4]
    assert torch.isneginf(out[0, 0])


def test_token_mass_matches_posting_lists():
    torch.manual_seed(1)
    codes = torch.cat([torch.tensor([[4, 3]]), torch.stack([torch.randint(0, 4, (20,)), torch.randint(0, 3, (20,))], 1)])
    index = CatalogueIndex(codes, (4, 3))
    w = torch.rand(2, 3, 21) * (torch.rand(2, 3, 21) > 0.3)
    w[..., 0] = 0.0  # the padding item is never in a consistency mask
    cb = torch.randint(0, 2, (2, 3))
    torch.testing.assert_close(index.token_mass(w, cb), index.token_mass_reference(w, cb))
    items = index.consistent_items_reference([0, 1], [int(codes[5, 0]), int(codes[5, 1])])
    assert 5 in items.tolist() and all(not index.contradicts(i, [0, 1], codes[5].tolist()) for i in items.tolist())
    mask = index.narrow(index.initial_mask(1, 1), torch.tensor([[0]]), codes[5, :1].view(1, 1))
    mask = index.narrow(mask, torch.tensor([[1]]), codes[5, 1:].view(1, 1))
    assert mask[0, 0].nonzero().squeeze(1).tolist() == items.tolist()


def test_candidate_lists_agree_with_item_masks():
    """The rollouts' candidate-list catalogue checks equal the mask form used by beam search."""
    torch.manual_seed(2)
    codes = torch.cat([torch.tensor([[4, 3, 5]]), torch.stack(
        [torch.randint(0, 4, (30,)), torch.randint(0, 3, (30,)), torch.randint(0, 5, (30,))], 1)])
    codes[1:26, 1], codes[26:, 1] = 0, 1  # one long posting list (as residual IDs' de-duplication codebook has)
    index = CatalogueIndex(codes, (4, 3, 5))
    postings = index.padded_postings()  # [M, D, P]
    for r in range(3):
        for t in range(5):
            listed = sorted(i for i in postings[r, t].tolist() if i > 0)
            assert listed == index.items_with(r, t).tolist()
    first_cb, second_cb = torch.tensor([0, 2, 1]), torch.tensor([1, 0, 2])
    first_tok = torch.tensor([int(codes[7, 0]), int(codes[9, 2]), int(codes[28, 1])])
    candidates = index.postings_of(first_cb, first_tok)  # [3, W]: only as wide as these three lists
    assert candidates.size(1) == max(len(index.items_with(int(r), int(t))) for r, t in zip(first_cb, first_tok))
    assert candidates.size(1) < postings.size(2) == 25
    assert torch.equal(candidates, postings[first_cb, first_tok][:, : candidates.size(1)])
    mask = index.narrow(index.initial_mask(3, 1), first_cb.view(3, 1), first_tok.view(3, 1))  # [3, 1, N]
    allowed_from_mask = index.token_mass(mask.float(), second_cb.view(3, 1))[:, 0] > 0
    assert torch.equal(index.allowed_tokens(candidates, second_cb), allowed_from_mask)
    second_tok = allowed_from_mask.float().argmax(dim=1)
    narrowed = index.narrow_items(candidates, second_cb, second_tok)
    mask = index.narrow(mask, second_cb.view(3, 1), second_tok.view(3, 1))
    for row in range(3):
        assert sorted(i for i in narrowed[row].tolist() if i > 0) == mask[row, 0].nonzero().squeeze(1).tolist()


def test_one_codebook_logits_equal_the_full_heads(tiny):
    model = tiny[0]
    states = torch.randn(3, 5, model.hidden_size, requires_grad=True)
    codebooks = torch.randint(0, model.n_codebooks, (3, 5))
    full = model.token_logits(states).gather(
        2, codebooks.view(3, 5, 1, 1).expand(3, 5, 1, model.token_embedding.max_size)
    ).squeeze(2)
    torch.testing.assert_close(model.codebook_logits(states, codebooks), full)
    model.codebook_logits(states, codebooks).masked_fill(torch.isinf(full), 0).sum().backward()
    assert states.grad is not None and states.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "extra, match",
    [({"reasoning_steps": 4}, "reasoning_steps"), ({"beam_size": 3}, "beam_size"), ({"crss_confidence": "vibes"}, "crss_confidence"),
     ({"composed_item_loss_weight": -1.0}, "composed_item_loss_weight=-1.0 must be a number >= 0"),
     ({"composed_item_loss_weight": "lots"}, "composed_item_loss_weight='lots' must be a number >= 0 .* or 'auto'")],
)
def test_bad_settings_fail_before_training(monkeypatch, workdir, extra, match):
    with pytest.raises(ValueError, match=match):
        build_tiny(monkeypatch, workdir, extra)
