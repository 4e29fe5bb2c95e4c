"""Training is unchanged by the decoder's faster dropout and its once-projected BOS queries: same
masks, same loss, same gradients as ``F.dropout`` and the position-by-position projection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tiny_models import build_tiny
from recbole_reg4rec.model import layers
from recbole_reg4rec.model.layers import TokenDecoder, dropout


@pytest.mark.parametrize("shape", [(7, 5, 64), (3, 130), (2, 4, 6, 8)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_draws_the_masks_of_f_dropout(shape, p):
    x = torch.randn(shape, requires_grad=True)
    torch.manual_seed(11)
    expect = F.dropout(x, p, True)
    after_expect = torch.rand(4)
    torch.manual_seed(11)
    got = dropout(x, p, True)
    after_got = torch.rand(4)
    assert torch.equal(got, expect) and torch.equal(after_got, after_expect)  # same values, same generator state
    (g_expect,), (g_got,) = torch.autograd.grad(expect.sum(), x), torch.autograd.grad(got.sum(), x)
    assert torch.equal(g_got, g_expect)
    assert torch.equal(dropout(x, p, False), x)
    strided = x.detach().transpose(0, -1)  # not contiguous: always through F.dropout
    torch.manual_seed(3)
    a = dropout(strided, p, True)
    torch.manual_seed(3)
    assert torch.equal(a, F.dropout(strided, p, True))


def test_the_mask_check_leaves_the_generator_alone():
    layers._rand_masks_match.cache_clear()
    torch.manual_seed(5)
    expect = torch.rand(6)
    torch.manual_seed(5)
    assert isinstance(layers._rand_masks_match(), bool)
    assert torch.equal(torch.rand(6), expect)


def _loss_and_grads(model, batch, seed):
    model.zero_grad()
    torch.manual_seed(seed)
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("epoch", [0, 3], ids=["warm-up orders", "CRSS-planned orders"])
def test_training_loss_and_gradients_equal_those_of_f_dropout(monkeypatch, workdir, epoch):
    """A tiny model, fixed seed: the loss (order planning, reflection negatives, dropout masks
    all drawn from the generator) and every gradient are those of torch's own dropout."""
    model, train, _ = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0, "crss_warmup_epochs": 1})
    model.train()
    model._epoch = epoch
    batch = next(iter(train))
    fast = _loss_and_grads(model, batch, seed=21)
    monkeypatch.setattr(layers, "_rand_masks_match", lambda: False)  # every dropout through F.dropout
    plain = _loss_and_grads(model, batch, seed=21)
    assert torch.equal(fast[0], plain[0])
    assert fast[1].keys() == plain[1].keys() and len(fast[1]) > 10
    for name, grad in plain[1].items():
        torch.testing.assert_close(fast[1][name], grad, rtol=0, atol=0, msg=name)


def test_decoder_projects_a_repeated_query_once_with_the_same_states_and_gradients():
    torch.manual_seed(0)
    decoder = TokenDecoder(2, 16, 2, 32, 0.0, 0.0)
    steps = torch.randn(3, 2, 5, 16)
    memory = torch.randn(3, 7, 16)
    mask = torch.rand(3, 7) > 0.3
    mask[:, 0] = True
    outs, grads = [], []
    for contiguous in (False, True):
        decoder.zero_grad()
        kv = decoder.memory_kv(memory)
        if contiguous:  # the query stream materialized: projected position by position
            layer = decoder.layers[0]
            x = layer(steps[:, :, :1].expand_as(steps).contiguous(), steps, kv[0], mask)
            x = decoder.layers[1](x, steps, kv[1], mask)
            out = decoder.norm(x)
        else:
            out = decoder(steps, kv, mask)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in decoder.named_parameters()})
    assert torch.equal(outs[0], outs[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("training", [False, True])
def test_history_memory_gives_the_folded_tables_states(training):
    """CRSS planning decodes one query per user with the history as it is; the beam folds it into
    tables: same states (float rounding) and, in training, the same dropout draws."""
    torch.manual_seed(0)
    decoder = TokenDecoder(2, 16, 2, 32, 0.3, 0.3).train(training)
    b, r = 4, 9
    pairs, bos = torch.randn(b, r, 16), torch.randn(b, 16)
    memory = torch.randn(b, 7, 16)
    mask = torch.rand(b, 7) > 0.3
    mask[:, 0] = True
    with torch.no_grad():
        kv = decoder.memory_kv(memory)
        folded = decoder.step_tables(pairs, bos, kv, mask)
        plain = decoder.step_tables(pairs, bos, kv, mask, fold_memory=False)
        for k in (1, 3):
            rows = torch.stack([torch.randperm(r)[:3] for _ in range(b * k)]).view(b, k, 3)
            torch.manual_seed(5)
            a, after_a = decoder.forward_last(folded, rows), torch.rand(3)
            torch.manual_seed(5)
            c, after_c = decoder.forward_last(plain, rows), torch.rand(3)
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)
            assert torch.equal(after_a, after_c)


def test_the_model_draws_every_dropout_through_the_exact_path(monkeypatch, workdir):
    """RecBole's encoder included: no plain nn.Dropout is left, and the state dict is unchanged."""
    model, _, _ = build_tiny(monkeypatch, workdir)
    kinds = {type(m) for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert kinds == {layers.Dropout}
    assert sum(isinstance(m, layers.Dropout) for m in model.trm_encoder.modules()) >= 3
    assert not any("dropout" in key for key in model.state_dict())
