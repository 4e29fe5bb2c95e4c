"""Rollout sampling from the decoder's step tables (each sampled pair's keys/values computed once)
against sampling that re-decodes every path's whole prefix at each step: same paths, same
behaviour log-probs, with dropout off."""

from __future__ import annotations

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.alignment.rollout import _masked_log_softmax, sample_paths
from recbole_reg4rec.model.crss import codebook_confidence, sample_next_codebook


def _sample_by_full_decodes(model, ctx, g: int, token_temperature: float):
    """The reference: the prefix of every path decoded anew at each step (no candidate lists:
    the catalogue check reads every item of each path's narrowing mask)."""
    b, m = ctx.last.size(0), model.n_codebooks
    index = model.catalogue()
    codebooks = torch.zeros(b, g, 0, dtype=torch.long)
    tokens = torch.zeros(b, g, 0, dtype=torch.long)
    emitted = torch.zeros(b * g, m, dtype=torch.bool)
    mask = index.initial_mask(b * g)  # [BG, N]
    rows = torch.arange(b * g)
    logps = []
    for s in range(m):
        width = 1 if s == 0 else g
        state = model.decode(ctx, codebooks[:, :width], tokens[:, :width], last_only=True)[:, :, -1]
        logits = model.token_logits(state).expand(b, g, m, -1).reshape(b * g, m, -1)
        conf = codebook_confidence(torch.log_softmax(logits, dim=-1), model.crss_confidence)
        chosen = sample_next_codebook(conf, emitted, 1.0)
        allowed = index.candidate_tokens(mask.unsqueeze(1), chosen.unsqueeze(1))[0][:, 0] > 0  # [BG, D]
        logp = _masked_log_softmax(logits[rows, chosen] / token_temperature, allowed)
        token = torch.multinomial(logp.exp(), 1).squeeze(-1)
        logps.append(logp[rows, token])
        mask = index.narrow(mask.unsqueeze(1), chosen.unsqueeze(1), token.unsqueeze(1))[:, 0]
        emitted[rows, chosen] = True
        codebooks = torch.cat([codebooks, chosen.view(b, g, 1)], dim=2)
        tokens = torch.cat([tokens, token.view(b, g, 1)], dim=2)
    return codebooks, tokens, torch.stack(logps, dim=1).view(b, g, m)


@pytest.mark.parametrize("decoder_layers", [1, 2])
def test_sampling_from_step_tables_matches_full_decodes(monkeypatch, workdir, decoder_layers):
    model, train, _ = build_tiny(monkeypatch, workdir / "data", extra={"decoder_layers": decoder_layers})
    model.eval()  # no dropout: both samplers see the same distributions
    inter = next(iter(train))
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ][:16], inter[model.ITEM_SEQ_LEN][:16])
        torch.manual_seed(3)
        got = sample_paths(model, ctx, group_size=6, token_temperature=0.7)
        torch.manual_seed(3)
        codebooks, tokens, logp = _sample_by_full_decodes(model, ctx, 6, 0.7)
    assert torch.equal(got.codebooks, codebooks) and torch.equal(got.tokens, tokens)
    torch.testing.assert_close(got.logp, logp, rtol=1e-5, atol=1e-5)
    assert (got.codebooks[:, :, 0] != got.codebooks[:, :1, 0]).any() or (got.tokens != got.tokens[:, :1]).any()
