"""Sampling G catalogue-consistent reasoning paths per context, batched.

The encoder runs once per context (``model.encode``) and its output is shared by all G
rollouts; rollouts are ``[B, G, ...]`` tensors and the only Python loop is over the M steps.
At every step the codebook is drawn by CRSS from ``softmax(confidence / order_temperature)``
over the codebooks not yet emitted (or the fixed order), and the token from the model's
distribution on that codebook at ``token_temperature``, restricted to tokens that keep at least
one catalogue item consistent with the path (CORP's catalogue check). So every sampled path
names a real item. Optionally (``pars_rollout_steering``) the token logits are steered by the
item-ID head's probability mass of the items each token keeps, as the fused beam ranks paths.

The catalogue check works on candidate lists, not item masks: before the first step every token
that some item holds is allowed; after it, a path's consistent items are a sub-list of one
posting list (``[B*G, P]``, P = the longest of the posting lists the batch's first steps chose),
so each later check reads P items per path instead of all N. The decoder computes only the newest
state at each step (from keys/values computed once per sampled pair), and nothing sampling does not need: the reflection verdicts on the sampled prefixes come from the one
re-scoring pass (:func:`path_log_probs`) that the update needs anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..model.crss import codebook_confidence, sample_next_codebook

NEG_INF = float("-inf")


@dataclass
class Rollouts:
    """G sampled full paths for each of B contexts (M steps)."""

    codebooks: torch.Tensor  # [B, G, M] codebook emitted at each step
    tokens: torch.Tensor  # [B, G, M] token emitted at each step
    allowed: torch.Tensor  # [B, G, M, D] bool, tokens the catalogue allowed at each step
    logp: torch.Tensor  # [B, G, M] log-prob of each emitted token under the policy that sampled it, at its temperature
    # [B, G, M, D] item-prior steering added to the token logits at each step (None: not steered):
    # fixed when sampled, so every policy that re-scores these paths sees the same steering
    steering: Optional[torch.Tensor] = None


def _masked_log_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.masked_fill(~allowed, NEG_INF), dim=-1)


def first_step_masses(index, item_prob: torch.Tensor) -> torch.Tensor:
    """Item-prior mass of every token of every codebook over the whole catalogue, the masses of
    the empty path: ``item_prob [B, N]`` -> ``[B, M, D]`` (entry ``t`` of codebook ``r`` = the
    probability of the items whose token on ``r`` is ``t``)."""
    b = item_prob.size(0)
    masses = item_prob.new_zeros(b, index.n_codebooks, index.max_size)
    for r in range(index.n_codebooks):
        masses[:, r].scatter_add_(1, index.codes_t[r].expand(b, -1), item_prob)
    return masses


@torch.no_grad()
def sample_paths(
    model, ctx, group_size: int, token_temperature: float = 1.0, order_temperature: float = 1.0,
    item_prob: Optional[torch.Tensor] = None, steering_weight: float = 0.0,
) -> Rollouts:
    """Sample ``group_size`` catalogue-consistent paths per context.

    With ``item_prob`` and ``steering_weight`` w > 0 the paths are drawn as the fused beam ranks
    them: a token's logit gets ``w * log`` (item-prior mass of the items the path keeps with that
    token), so the rollouts follow the item-level ID head as well as the tokens, and rewards judge
    the paths the ranking would take. The steering is part of the behaviour policy (stored in
    :attr:`Rollouts.steering`), fixed once sampled.

    Args:
        model: a :class:`~recbole_reg4rec.model.reg4rec.REG4Rec` (uses its decoder's step
            tables, ``token_logits``, ``catalogue()``, ``fixed_order``,
            ``crss_confidence``).
        ctx: its ``EncodedContext`` for B contexts, computed once.
        group_size: G.
        token_temperature: sampling temperature of tokens (> 0).
        order_temperature: CRSS temperature of the codebook choice (<= 0: most confident).
        item_prob: ``[B, N]`` item-level probabilities (the ID head), or None.
        steering_weight: w (0: not steered).
    """
    b = ctx.last.size(0)
    g = group_size
    m = model.n_codebooks
    device = ctx.last.device
    index = model.catalogue()
    candidates = None  # [BG, P] items consistent with each path (0 = empty slot), after step 0
    codebooks = torch.zeros(b, g, 0, dtype=torch.long, device=device)
    tokens = torch.zeros(b, g, 0, dtype=torch.long, device=device)
    emitted = torch.zeros(b * g, m, dtype=torch.bool, device=device)
    rows = torch.arange(b * g, device=device)
    allowed_steps, logp_steps, steering_steps = [], [], []
    steered = item_prob is not None and steering_weight > 0
    user = rows // g  # [BG] the context of each path
    masses_at_start = first_step_masses(index, item_prob) if steered else None  # [B, M, D]
    # the decoder's keys/values of each sampled pair are computed once, when it is sampled (its
    # dropout drawn once); each step decodes one new query per path (row s * G + g = step s of path g)
    bos = model.dropout(model.bos + ctx.last)  # [B, H]
    pairs = bos.new_zeros(b, 0, bos.size(-1))  # [B, G * s, H] step embeddings sampled so far
    tables = None
    for s in range(m):
        # ctx is broadcast over the G paths: the encoder output is shared, not recomputed; the
        # first state (empty path) is the same for all G paths, so it is decoded once per context
        width = 1 if s == 0 else g
        tables = model.decoder.step_tables(pairs, bos, ctx.mem_kv, ctx.mem_mask, reuse=tables)
        path_rows = torch.arange(s, device=device) * g + torch.arange(width, device=device).unsqueeze(1)  # [G|1, S]
        state = model.decoder.forward_last(tables, path_rows.expand(b, width, s))  # [B, G|1, H]
        logits = model.token_logits(state).expand(b, g, m, -1).reshape(b * g, m, -1)  # [BG, M, D]
        if model.fixed_order:
            chosen = torch.full((b * g,), s, dtype=torch.long, device=device)
        else:
            conf = codebook_confidence(torch.log_softmax(logits, dim=-1), model.crss_confidence)  # [BG, M]
            chosen = sample_next_codebook(conf, emitted, order_temperature)
        if candidates is None:
            allowed = index.token_exists[chosen]  # [BG, D]
        else:
            allowed = index.allowed_tokens(candidates, chosen)  # [BG, D]
        step_logits = logits[rows, chosen]  # [BG, D]
        if steered:
            if candidates is None:
                masses = masses_at_start[user, chosen]  # [BG, D]
            else:
                weights = item_prob[user.unsqueeze(1), candidates] * (candidates > 0)  # [BG, P]
                masses = index.candidate_token_sums(candidates, chosen, weights)
            steering = steering_weight * masses.clamp_min(1e-30).log()
            steering_steps.append(steering)
            step_logits = step_logits + steering
        sample_logp = _masked_log_softmax(step_logits / token_temperature, allowed)
        token = torch.multinomial(sample_logp.exp(), 1).squeeze(-1)  # [BG]
        logp_steps.append(sample_logp[rows, token])  # the behaviour policy's log-prob (temperature included)
        allowed_steps.append(allowed)
        if candidates is None:
            candidates = index.postings_of(chosen, token)  # [BG, P]
        else:
            candidates = index.narrow_items(candidates, chosen, token)
        emitted[rows, chosen] = True
        codebooks = torch.cat([codebooks, chosen.view(b, g, 1)], dim=2)
        tokens = torch.cat([tokens, token.view(b, g, 1)], dim=2)
        if s < m - 1:
            step = model.token_embedding(chosen, token) + model.codebook_embedding(chosen)  # [BG, H]
            pairs = torch.cat([pairs, model.dropout(step).view(b, g, -1)], dim=1)
    return Rollouts(
        codebooks=codebooks,
        tokens=tokens,
        allowed=torch.stack(allowed_steps, dim=1).view(b, g, m, -1),
        logp=torch.stack(logp_steps, dim=1).view(b, g, m),
        steering=torch.stack(steering_steps, dim=1).view(b, g, m, -1) if steered else None,
    )


def path_log_probs(model, ctx, rollouts: Rollouts, temperature: float = 1.0):
    """Re-score sampled paths under ``model`` (with gradient), one decoder pass per path.

    Args:
        ctx: ``model``'s ``EncodedContext`` for the B contexts.
        temperature: token temperature of the policy being scored; the sampling temperature
            makes these log-probs comparable with :attr:`Rollouts.logp` (importance ratios, KL).

    Returns:
        ``logp [B, G, M]`` log-probability of each emitted token (restricted to the tokens the
        catalogue allowed, as when sampling) and ``reflect_logit [B, G, M]``.
    """
    b, g, m = rollouts.tokens.shape
    states = model.decode(ctx, rollouts.codebooks, rollouts.tokens)  # [B, G, M + 1, H]
    step_logits = model.codebook_logits(states[:, :, :-1], rollouts.codebooks)  # [B, G, M, D]
    if rollouts.steering is not None:  # the behaviour policy's item-prior steering, as sampled
        step_logits = step_logits + rollouts.steering
    logp = _masked_log_softmax(step_logits / temperature, rollouts.allowed)
    token_logp = logp.gather(-1, rollouts.tokens.unsqueeze(-1)).squeeze(-1)  # [B, G, M]
    reflect_logit = model.reflection_head(states[:, :, 1:]).squeeze(-1)  # [B, G, M]
    return token_logp, reflect_logit
