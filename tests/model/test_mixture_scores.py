"""The ``mixture`` score mode: items ranked by a mixture over the beam's reasoning paths of an item
softmax conditioned on each path (``path_item_loss_weight`` trains the head)."""

from __future__ import annotations

import pytest
import torch

from tiny_models import build_tiny


@pytest.fixture
def tiny_mixture(monkeypatch, workdir):
    model, train, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0, "path_item_loss_weight": 1.0})
    model.eval()
    inter = next(iter(test))[0]
    return model, train, inter


def test_mixture_equals_the_weighted_sum_over_beam_paths(tiny_mixture):
    model, _, inter = tiny_mixture
    model.configure_inference(score_mode="mixture", reasoning_steps=2)
    with torch.no_grad():
        scores = model.full_sort_predict(inter)  # [B, N]
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        result, _, _ = model.beam_search(ctx)
        b = 0  # one user by hand: sum_k pi_k softmax(logits after path k)
        live = torch.isfinite(result.path_scores[b])
        pi = torch.softmax(result.path_scores[b][live], dim=0)
        states = model.decode(ctx, result.codebooks, result.tokens, last_only=True)[b, :, -1][live]  # [K', H]
        probs = torch.softmax(model.path_item_logits(states, model.item_table()), dim=-1)  # [K', N]
        expected = torch.log((pi.unsqueeze(1) * probs).sum(0))
    assert torch.allclose(scores[b, 1:], expected[1:], atol=1e-5)
    assert scores[b, 0] == float("-inf")
    assert torch.isfinite(scores[:, 1:]).all()  # every real item is scored, reached by a path or not


def test_mixture_depends_on_the_reasoning_paths(tiny_mixture):
    model, _, inter = tiny_mixture
    with torch.no_grad():
        model.configure_inference(score_mode="mixture", reasoning_steps=1)
        one_step = model.full_sort_predict(inter)
        model.configure_inference(reasoning_steps=3)
        three_steps = model.full_sort_predict(inter)
    assert not torch.allclose(one_step, three_steps)


def test_path_item_loss_trains_the_head(tiny_mixture):
    model, train, _ = tiny_mixture
    model.train()
    inter = next(iter(train))
    loss_with = model.calculate_loss(inter)
    loss_with.backward()
    grad = model.path_item_head.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_mixture_needs_the_trained_head(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0})
    assert model.path_item_head is None
    with pytest.raises(ValueError, match="score_mode='mixture' needs the path-conditioned item head"):
        model.configure_inference(score_mode="mixture")


def test_predict_in_mixture_mode_reads_full_scores(tiny_mixture):
    model, _, inter = tiny_mixture
    model.configure_inference(score_mode="mixture")
    items = torch.randint(1, model.n_items, (inter.length,))
    inter.update(type(inter)({model.ITEM_ID: items}))
    with torch.no_grad():
        full = model.full_sort_predict(inter)
        sampled = model.predict(inter)
    assert torch.allclose(sampled, full.gather(1, items.unsqueeze(1)).squeeze(1))
