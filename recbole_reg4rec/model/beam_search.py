"""Batched beam search with CORP (consistency-oriented self-reflection pruning).

Everything is a tensor over ``[B users, K paths]``; the only Python loop is over the L reasoning
steps. One step:

1. the model gives, for every live path, log-probabilities ``[B, K, M, D]`` of every codebook and
   the reflection log-probability ``[B, K]`` of the path so far (:data:`StepFn`);
2. CORP reflection: paths whose reflection probability is below ``reflection_threshold`` die, or
   ``reflection_weight * log p_reflect`` is added to their score;
3. CRSS picks the ``branch`` most confident remaining codebooks per path (or the fixed order);
4. candidates = path x chosen codebook x token; CORP catalogue check: a candidate is dropped when
   no item holds all its pairs (the candidate bookkeeping of :mod:`.beam_candidates`, which
   carries each path's consistent items as one group of a catalogue-wide sorted item list);
5. the best ``pool_factor * K`` candidates are kept, paths with the same token *set* reached in
   different orders are merged (log-sum-exp of their scores), and the best K survive.

After L steps every item consistent with a path is scored by the path score plus the
log-probabilities of its remaining tokens (completion), log-sum-exp over paths.
With CORP, path ranking may add ``fusion_weight * log sum_{consistent items} p_item`` (item-level
prior); it steers which paths survive but is not part of the returned token scores. Plain beam
search (``corp = False``) ranks paths by their token scores alone: the prior reads the catalogue,
which plain search may consult only at the end.

:func:`exhaustive_item_scores` is the plain reference: it walks every item's own paths one by one;
``BeamConfig.candidates = "dense"`` runs the same search with one ``[N]`` item mask per path (the
reference of the grouped bookkeeping, ``O(users x beam x N)`` per step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch

from ..registry import read_properties
from .beam_candidates import DenseCandidates, GroupedCandidates, gather_paths
from .catalogue_index import CatalogueIndex
from .crss import codebook_confidence, select_codebooks

StepFn = Callable[[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, Optional[torch.Tensor]]]
"""``step_fn(codebooks [B, K, S], tokens [B, K, S]) -> (log_probs [B, K, M, D], reflect_logp [B, K])``.

``log_probs[b, k, r]`` is the next-token distribution of codebook ``r`` after the path's S pairs
(the search reads it only for the codebooks not on the path yet); ``reflect_logp`` is log p(path
of S pairs is consistent) (ignored when S = 0), or None from a step function built without the
reflection head (allowed when the search does not use reflection, see :func:`needs_reflection`)."""

NEG_INF = float("-inf")


#: REG4Rec's settings (``properties/model/REG4Rec.yaml``), the defaults of :class:`BeamConfig`.
_REG4REC = read_properties("model/REG4Rec.yaml")


@dataclass
class BeamConfig:
    """Beam-search settings (see ``properties/model/REG4Rec.yaml`` for their meaning).

    The model builds it from its config (``REG4Rec.beam_config()``); the defaults serve direct
    callers. Those with a config key are read from REG4Rec.yaml; those whose key defaults to
    ``auto`` there (chosen on validation) default to off, ``reasoning_steps`` to 3 and
    ``beam_size`` to the widest width its ``auto`` tries.
    """

    beam_size: int = 50  # the widest width beam_size: auto tries (REG4Rec.yaml's default)
    reasoning_steps: int = 3
    branch: int = _REG4REC["crss_beam_branch"]
    confidence: str = _REG4REC["crss_confidence"]
    fixed_order: bool = False
    corp: bool = _REG4REC["corp_enabled"]
    reflection_threshold: float = _REG4REC["reflection_threshold"]
    reflection_weight: float = 0.0
    merge: bool = _REG4REC["beam_merge"]
    pool_factor: int = _REG4REC["beam_pool_factor"]
    fusion_weight: float = 0.0
    candidates: str = "grouped"  # "grouped" (sparse, used) or "dense" (reference masks, tests)
    # record the reflection probability after the last step (BeamResult.step_reflection, read by
    # explanations); ranking turns it off, so the decoder pass after the last step is skipped when
    # nothing else reads it (every codebook emitted, no reflection in the path scores)
    trace: bool = True
    block_items: int = 1 << 20  # most (path, item) pairs one tensor op of the grouped bookkeeping holds


# Memory of one user's search, for choosing users per chunk from a budget: float tensors of N
# items per user that live at once (item prior, its probabilities, the beam scores, the fallback,
# the ranking) and the beam state. Measured peak resident growth per user on CPU (beam 50, pool 2,
# 4 x 64 tokens, hidden 64): 0.76 MB at 2k items, 1.7 MB at 20k, i.e. ~53 bytes per item + 0.65 MB;
# rounded up here.
BYTES_PER_USER_ITEM = 64
BYTES_PER_USER_PATH_TOKEN = 32  # per path x codebook x token: log-probs, candidates, counts, groups
BLOCK_SHARE = 4  # a quarter of the budget goes to the blocks of (path, item) pairs
BYTES_PER_BLOCK_ITEM = 64


def user_bytes(n_items: int, n_codebooks: int, max_size: int, cfg: BeamConfig) -> int:
    """Estimated peak bytes of one user's search and ranking (linear in ``n_items``)."""
    paths = cfg.beam_size * max(1, cfg.pool_factor)
    return BYTES_PER_USER_ITEM * n_items + BYTES_PER_USER_PATH_TOKEN * paths * n_codebooks * max_size


def plan_chunks(budget_mb: float, n_items: int, n_codebooks: int, max_size: int, cfg: BeamConfig) -> Tuple[int, int]:
    """Users per chunk and ``block_items`` so that one chunk's search fits ``budget_mb``.

    A quarter of the budget bounds the (path, item) blocks (at least one catalogue's worth), the
    rest holds the users. Raises ``ValueError`` when not even one user fits.
    """
    budget = int(budget_mb * 2 ** 20)
    block_items = max(n_items, budget // BLOCK_SHARE // BYTES_PER_BLOCK_ITEM)
    per_user = user_bytes(n_items, n_codebooks, max_size, cfg)
    users = (budget - block_items * BYTES_PER_BLOCK_ITEM) // per_user
    if users < 1:
        need = (per_user + n_items * BYTES_PER_BLOCK_ITEM) * BLOCK_SHARE / (BLOCK_SHARE - 1) / 2 ** 20
        raise ValueError(
            f"beam_memory_mb={budget_mb} is too small to search one user over {n_items} items with "
            f"beam_size={cfg.beam_size}: set beam_memory_mb to at least {math.ceil(need)}."
        )
    return int(users), int(block_items)


@dataclass
class BeamResult:
    """Output of :func:`corp_beam_search` for B users, K final paths, L steps, N items."""

    item_scores: torch.Tensor  # [B, N] token score of every item reached, -inf elsewhere
    codebooks: torch.Tensor  # [B, K, L] codebook emitted at each step
    tokens: torch.Tensor  # [B, K, L] token emitted at each step
    step_logp: torch.Tensor  # [B, K, L] log-prob of the emitted token
    step_confidence: torch.Tensor  # [B, K, L] CRSS confidence of the chosen codebook
    step_reflection: torch.Tensor  # [B, K, L] reflection probability after each step
    path_scores: torch.Tensor  # [B, K] final path score (-inf = dead path)
    pruned_catalogue: torch.Tensor  # [B] candidates dropped by the catalogue check
    pruned_reflection: torch.Tensor  # [B] paths dropped by the reflection threshold
    merged: torch.Tensor  # [B] candidates merged into an equal token set
    start_log_probs: torch.Tensor  # [B, M, D] every codebook's log-probs before the first step


# ---- small helpers ----------------------------------------------------------------------------
def reflection_scores(cfg: BeamConfig) -> bool:
    """Whether CORP reflection changes path scores (a soft penalty or a pruning threshold)."""
    return cfg.corp and (cfg.reflection_weight != 0 or cfg.reflection_threshold > 0)


def needs_reflection(cfg: BeamConfig) -> bool:
    """Whether the search reads the step function's reflection log-probabilities."""
    return cfg.trace or reflection_scores(cfg)


def _record_reflection(hist: torch.Tensor, score: torch.Tensor, reflect_logp, cfg: BeamConfig):
    """After a step: CORP reflection on the paths' scores and the reflection probability of their
    last pair in ``hist`` (NaN without reflection). Returns the new ``score`` and the paths
    pruned per user ``[B]``."""
    if reflect_logp is None:
        if reflection_scores(cfg):
            raise ValueError("the beam uses reflection (reflection_weight / reflection_threshold) but the step "
                             "function gives none: build it with the reflection head")
        hist[:, :, -1, 2] = float("nan")
        return score, torch.zeros(score.size(0), dtype=torch.long, device=score.device)
    hist[:, :, -1, 2] = reflect_logp.exp()
    if not reflection_scores(cfg):
        return score, torch.zeros(score.size(0), dtype=torch.long, device=score.device)
    return apply_reflection(score, reflect_logp, cfg)


def apply_reflection(
    score: torch.Tensor, reflect_logp: torch.Tensor, cfg: BeamConfig
) -> Tuple[torch.Tensor, torch.Tensor]:
    """CORP reflection on paths: threshold pruning and/or soft penalty.

    Returns the new ``score [B, K]`` and the number of live paths pruned per user ``[B]``.
    """
    alive = torch.isfinite(score)
    if cfg.reflection_weight:
        score = score + cfg.reflection_weight * reflect_logp
    pruned = torch.zeros(score.size(0), dtype=torch.long, device=score.device)
    if cfg.reflection_threshold > 0:
        drop = alive & (reflect_logp < math.log(cfg.reflection_threshold))
        score = score.masked_fill(drop, NEG_INF)
        pruned = drop.sum(dim=1)
    return score, pruned


def expand_candidates(
    score: torch.Tensor, log_probs: torch.Tensor, emitted: torch.Tensor, step: int, cfg: BeamConfig
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CRSS choice of codebooks and the scores of every (path, codebook, token) candidate.

    Args:
        score: ``[B, K]`` path scores; log_probs: ``[B, K, M, D]``; emitted: ``[B, K, M]`` bool.

    Returns:
        chosen ``[B, K, b]`` codebooks, candidate scores ``[B, K, b, D]``, chosen confidences ``[B, K, b]``.
    """
    b, k, m, d = log_probs.shape
    if cfg.fixed_order:
        chosen = torch.full((b, k, 1), step, dtype=torch.long, device=score.device)
    elif m - step == 1:  # one codebook left (every path emitted one per step): nothing to choose
        chosen = (~emitted).to(torch.uint8).argmax(dim=-1, keepdim=True)
    else:
        chosen = select_codebooks(codebook_confidence(log_probs, cfg.confidence), emitted, cfg.branch)  # [B, K, b]
    rows = torch.arange(b * k, device=score.device).unsqueeze(1)
    cand_lp = log_probs.reshape(b * k, m, d)[rows, chosen.reshape(b * k, -1)].view(*chosen.shape, d)  # [B, K, b, D]
    return chosen, score[..., None, None] + cand_lp, codebook_confidence(cand_lp, cfg.confidence)


def merge_equal_sets(
    sets: torch.Tensor, score: torch.Tensor, prior: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge candidates of one user that hold the same token set (different orders).

    Args:
        sets: ``[B, P, M]`` token per codebook (-1 = not emitted), candidates sorted best first.
        score: ``[B, P]`` path scores; prior: ``[B, P]`` ranking bonus (equal within a set).

    Returns:
        merged scores ``[B, P]`` (log-sum-exp over the set, kept on its best member, -inf on the
        others), ranking keys ``[B, P]``, number of merged-away candidates per user ``[B]``.
    """
    b, p, m = sets.shape
    group = _set_groups(sets)  # [B*P]
    n_groups = int(group.max()) + 1
    flat = score.reshape(-1)
    gmax = flat.new_full((n_groups,), NEG_INF).scatter_reduce(0, group, flat, "amax")
    safe = torch.where(torch.isfinite(gmax), gmax, torch.zeros_like(gmax))
    gsum = flat.new_zeros(n_groups).scatter_add(0, group, (flat - safe[group]).exp())
    lse = torch.where(torch.isfinite(gmax), safe + gsum.log(), gmax)  # [G]
    pos = torch.arange(b * p, device=sets.device)
    first = torch.full((n_groups,), b * p, device=sets.device).scatter_reduce(0, group, pos, "amin")
    keep = (first[group] == pos).view(b, p)
    merged = torch.where(keep, lse[group].view(b, p), torch.full_like(score, NEG_INF))
    n_merged = (~keep & torch.isfinite(score)).sum(dim=1)
    return merged, merged + prior, n_merged


def _set_groups(sets: torch.Tensor) -> torch.Tensor:
    """Group ids ``[B * P]`` of equal token sets within each user: ``sets [B, P, M]`` (-1 = absent).

    Each set is packed into one integer (exact while ``(D + 1) ** M < 2 ** 62``, else rows are
    compared with ``torch.unique``); groups never span two users.
    """
    b, p, m = sets.shape
    base = int(sets.max()) + 2
    if base ** m >= 2 ** 62:
        user = torch.arange(b, device=sets.device).view(b, 1, 1).expand(b, p, 1)
        return torch.unique(torch.cat([user, sets], dim=-1).reshape(b * p, m + 1), dim=0, return_inverse=True)[1]
    weights = base ** torch.arange(m, device=sets.device)
    keys = ((sets + 1) * weights).sum(dim=-1)  # [B, P]
    sorted_keys, order = keys.sort(dim=1)
    new = torch.ones_like(sorted_keys, dtype=torch.bool)
    new[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]  # first of each row is always new
    gid = (new.reshape(-1).cumsum(0) - 1).view(b, p)
    return torch.empty_like(gid).scatter_(1, order, gid).reshape(-1)


# ---- the search ---------------------------------------------------------------------------
def corp_beam_search(
    step_fn: StepFn,
    index: CatalogueIndex,
    n_users: int,
    cfg: BeamConfig,
    item_log_prior: Optional[torch.Tensor] = None,
) -> BeamResult:
    """Beam search over reasoning paths for ``n_users`` users at once.

    Args:
        step_fn: the model's step function (:data:`StepFn`), bound to these users' histories.
        index: the catalogue index.
        n_users: B.
        cfg: settings. ``cfg.corp = False`` gives plain beam search (no catalogue or reflection
            pruning, no merging; items are matched only at the end).
        item_log_prior: ``[B, N]`` item-level log-probabilities, used with ``cfg.fusion_weight``
            to rank paths during a CORP search (ignored by plain search).

    Returns:
        :class:`BeamResult`.
    """
    device = index.device
    m, big_k = index.n_codebooks, cfg.beam_size
    b = n_users
    cb = torch.zeros(b, 1, 0, dtype=torch.long, device=device)  # [B, K, S]
    tok = torch.zeros_like(cb)
    score = torch.zeros(b, 1, device=device)  # [B, K]
    emitted = torch.zeros(b, 1, m, dtype=torch.bool, device=device)  # [B, K, M]
    sets = torch.full((b, 1, m), -1, dtype=torch.long, device=device)  # [B, K, M]
    if cfg.candidates == "dense":
        cands = DenseCandidates.root(index, b)
    else:
        cands = GroupedCandidates.root(index, b, cfg.block_items)
    hist = torch.zeros(b, 1, 0, 4, device=device)  # [B, K, S, (logp, conf, reflect, unused)]
    # the prior of a path is the mass of the catalogue items consistent with it: catalogue
    # knowledge, so plain beam search (corp off, items matched only at the end) does not use it
    use_prior = item_log_prior is not None and cfg.fusion_weight != 0 and cfg.corp
    item_prob = item_log_prior.exp() if use_prior else None
    pruned_cat = torch.zeros(b, dtype=torch.long, device=device)
    pruned_ref = torch.zeros_like(pruned_cat)
    merged_cnt = torch.zeros_like(pruned_cat)

    for step in range(cfg.reasoning_steps):
        log_probs, reflect_logp = step_fn(cb, tok)  # [B, K, M, D], [B, K]
        if step == 0:
            start_log_probs = log_probs[:, 0]  # one (empty) path per user
        if step > 0:
            score, dropped = _record_reflection(hist, score, reflect_logp, cfg)
            pruned_ref += dropped
        chosen, cand, conf = expand_candidates(score, log_probs, emitted, step, cfg)  # [B,K,b], [B,K,b,D], [B,K,b]
        nb, d = chosen.size(-1), cand.size(-1)
        live = torch.isfinite(score)  # [B, K]
        scored = cand  # before the catalogue check: the emitted token's log-prob is read from it
        counts, masses = cands.expand(chosen, item_prob, live)  # [B, K, b, D] each
        if cfg.corp:
            empty = counts == 0
            pruned_cat += (empty & torch.isfinite(cand)).flatten(1).sum(dim=1)
            cand = cand.masked_fill(empty, NEG_INF)
        # keep the best pool of candidates, merge equal sets, keep the best K
        prior = cfg.fusion_weight * masses.clamp_min(1e-30).log() if use_prior else None  # [B, K, b, D]
        flat_key = (cand + prior).flatten(1) if use_prior else cand.flatten(1)  # [B, K*b*D]
        pool = min(flat_key.size(1), max(big_k, cfg.pool_factor * big_k))
        key, pick = flat_key.topk(pool, dim=1)  # [B, P]
        cand_score = cand.flatten(1).gather(1, pick)
        cand_prior = prior.flatten(1).gather(1, pick) if use_prior else torch.zeros_like(cand_score)
        parent = pick // (nb * d)
        parent_score = score.gather(1, parent)
        pick_lp = torch.where(
            live.gather(1, parent), scored.flatten(1).gather(1, pick) - parent_score, torch.full_like(parent_score, NEG_INF)
        )  # [B, P] log-prob of each candidate's token
        j = (pick // d) % nb
        # a dead candidate (-inf, e.g. a pad slot of a smaller codebook) keeps a real token, so
        # that its path still embeds: it stays dead whatever it holds
        t = torch.where(torch.isfinite(cand_score), pick % d, torch.zeros_like(pick))
        r = gather_paths(chosen, parent).gather(2, j.unsqueeze(-1)).squeeze(-1)  # [B, P]
        c = gather_paths(conf, parent).gather(2, j.unsqueeze(-1)).squeeze(-1)  # [B, P]
        new_sets = gather_paths(sets, parent).scatter(2, r.unsqueeze(-1), t.unsqueeze(-1))  # [B, P, M]
        if cfg.corp and cfg.merge and step > 0:
            cand_score, key, n_merged = merge_equal_sets(new_sets, cand_score, cand_prior)
            merged_cnt += n_merged
        width = min(big_k, pool)
        key, sel = key.topk(width, dim=1)  # [B, K']
        parent, r, t, c = (x.gather(1, sel) for x in (parent, r, t, c))
        score = cand_score.gather(1, sel)
        sets = new_sets.gather(1, sel.unsqueeze(-1).expand(-1, -1, m))
        lp_tok = pick_lp.gather(1, sel)  # [B, K']
        cb = torch.cat([gather_paths(cb, parent), r.unsqueeze(-1)], dim=2)
        tok = torch.cat([gather_paths(tok, parent), t.unsqueeze(-1)], dim=2)
        emitted = gather_paths(emitted, parent).scatter(2, r.unsqueeze(-1), True)
        cands = cands.select(parent, j.gather(1, sel), r, t)
        new_hist = torch.stack([lp_tok, c, torch.ones_like(c), torch.zeros_like(c)], dim=-1)
        hist = torch.cat([gather_paths(hist, parent), new_hist.unsqueeze(2)], dim=2)

    # the pass after the last step gives the completion log-probs of the codebooks not emitted
    # and the last reflection; with every codebook emitted only the reflection may be read
    log_probs = None
    if cfg.reasoning_steps < m or needs_reflection(cfg):
        log_probs, reflect_logp = step_fn(cb, tok)
        score, dropped = _record_reflection(hist, score, reflect_logp, cfg)
        pruned_ref += dropped
    else:
        hist[:, :, -1, 2] = float("nan")
    item_scores = cands.completion(score, log_probs, emitted)
    return BeamResult(
        item_scores=item_scores,
        codebooks=cb,
        tokens=tok,
        step_logp=hist[..., 0],
        step_confidence=hist[..., 1],
        step_reflection=hist[..., 2],
        path_scores=score,
        pruned_catalogue=pruned_cat,
        pruned_reflection=pruned_ref,
        merged=merged_cnt,
        start_log_probs=start_log_probs,
    )


# ---- plain reference -----------------------------------------------------------------------------
def exhaustive_item_scores(step_fn: StepFn, index: CatalogueIndex, n_users: int, cfg: BeamConfig) -> torch.Tensor:
    """Brute-force reference of :func:`corp_beam_search`'s token scores (slow; tests only).

    For every user and every item, walk each of the item's own reasoning paths: at each prefix
    the model's CRSS choice (the ``branch`` most confident remaining codebooks, or the fixed
    order) decides which codebook comes next, the token is the item's own; reflection
    penalty/threshold is applied as in the beam; after L steps add the completion
    log-probabilities. The item's score is the log-sum-exp over its paths.

    Returns:
        ``[B, N]`` scores (``-inf`` for the padding item and for items whose every path died).
    """
    out = torch.full((n_users, index.n_items), NEG_INF)
    codes = index.codes.cpu()
    cache: dict = {}

    def model_at(path: List[int], item: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The model's outputs for every user after the prefix (memoised: items share prefixes)."""
        key = tuple(path), tuple(codes[item, path].tolist()) if path else ()
        if key not in cache:
            cbs = torch.tensor([path], dtype=torch.long).expand(n_users, 1, len(path))
            toks = codes[item][cbs] if path else cbs.clone()
            log_probs, refl = step_fn(cbs.to(index.device), toks.to(index.device))
            cache[key] = (log_probs[:, 0].cpu(), refl[:, 0].cpu())
        return cache[key]

    def walk(user: int, item: int, path: List[int], score: float) -> List[float]:
        log_probs, refl = model_at(path, item)
        lp = log_probs[user]  # [M, D]
        if path:
            rl = float(refl[user])
            if cfg.corp:
                score += cfg.reflection_weight * rl if cfg.reflection_weight else 0.0
                if cfg.reflection_threshold > 0 and rl < math.log(cfg.reflection_threshold):
                    return []
        remaining = [r for r in range(index.n_codebooks) if r not in path]
        if len(path) == cfg.reasoning_steps:
            return [score + sum(float(lp[r, codes[item, r]]) for r in remaining)]
        if cfg.fixed_order:
            nxt = [len(path)]
        else:
            conf = codebook_confidence(lp, cfg.confidence).tolist()
            nxt = sorted(remaining, key=lambda r: -conf[r])[: max(1, cfg.branch)]
        results: List[float] = []
        for r in nxt:
            results += walk(user, item, path + [r], score + float(lp[r, codes[item, r]]))
        return results

    for user in range(n_users):
        for item in range(1, index.n_items):
            scores = walk(user, item, [], 0.0)
            if scores:
                out[user, item] = torch.logsumexp(torch.tensor(scores), dim=0)
    return out
