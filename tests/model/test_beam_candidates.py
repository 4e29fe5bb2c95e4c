"""Grouped (sparse) candidate bookkeeping of beam search against the dense item-mask reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recbole_reg4rec.model.beam_search import BeamConfig, corp_beam_search, exhaustive_item_scores
from recbole_reg4rec.model.catalogue_index import CatalogueIndex


def random_catalogue(seed: int, n_items: int, sizes) -> CatalogueIndex:
    """Random codes with duplicates and skewed tokens (row 0 = padding item)."""
    g = torch.Generator().manual_seed(seed)
    skew = torch.rand(len(sizes), generator=g) < 0.5
    cols = []
    for r, d in enumerate(sizes):
        weights = torch.arange(d, 0, -1).float() ** (3.0 if skew[r] else 0.0)
        cols.append(torch.multinomial(weights, n_items - 1, replacement=True, generator=g))
    codes = torch.cat([torch.tensor([list(sizes)]), torch.stack(cols, 1)])
    return CatalogueIndex(codes, sizes)


def random_step_fn(seed: int, n_users: int, sizes):
    """A deterministic model: token logits = user bias + sum over the path's pairs of a random
    table (order-free, like the decoder), padding slots -inf; reflection alike."""
    g = torch.Generator().manual_seed(seed + 1000)
    m, d = len(sizes), max(sizes)
    user = torch.randn(n_users, m, d, generator=g) * 2
    pair = torch.randn(m, d, m, d, generator=g)
    user_refl, pair_refl = torch.randn(n_users, generator=g), torch.randn(m, d, generator=g)
    valid = torch.arange(d).view(1, d) < torch.tensor(sizes).view(m, 1)  # [M, D]

    def step(codebooks, tokens):
        b, k, s = codebooks.shape
        logits = user.view(b, 1, m, d).expand(b, k, m, d).clone()
        refl = user_refl.view(b, 1).expand(b, k).clone()
        for i in range(s):
            logits = logits + pair[codebooks[..., i], tokens[..., i]]
            refl = refl + pair_refl[codebooks[..., i], tokens[..., i]]
        logits = logits.masked_fill(~valid, float("-inf"))
        return torch.log_softmax(logits, dim=-1), torch.nn.functional.logsigmoid(refl)

    return step


CONFIGS = [
    {},
    {"branch": 2},
    {"branch": 3, "reasoning_steps": 2},
    {"reasoning_steps": 1},
    {"fixed_order": True},
    {"corp": False},
    {"corp": False, "branch": 2},
    {"reflection_threshold": 0.4},
    {"reflection_weight": 0.5, "merge": False},
    {"beam_size": 40, "pool_factor": 1},
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_grouped_and_dense_bookkeeping_give_identical_beams(kw):
    """Same paths, tokens, scores, pruning counts and item scores on random catalogues and models,
    with and without the fused item prior; tiny blocks exercise the block splitting."""
    reached = 0
    for seed in range(12):
        sizes = (3, 4, 5) if seed % 2 else (4, 2, 3, 3)
        n_items, n_users = 20 + 7 * seed, 4
        index = random_catalogue(seed, n_items, sizes)
        step = random_step_fn(seed, n_users, sizes)
        prior = torch.log_softmax(torch.randn(n_users, n_items, generator=torch.Generator().manual_seed(seed)), 1)
        prior[:, 0] = float("-inf")
        base = BeamConfig(beam_size=6, reasoning_steps=len(sizes), fusion_weight=2.0 if seed % 3 else 0.0)
        cfg = dataclasses.replace(base, block_items=1 + seed % 5 * 9, **kw)
        dense = corp_beam_search(step, index, n_users, dataclasses.replace(cfg, candidates="dense"), prior)
        grouped = corp_beam_search(step, index, n_users, cfg, prior)
        assert torch.equal(dense.codebooks, grouped.codebooks), seed
        assert torch.equal(dense.tokens, grouped.tokens), seed
        torch.testing.assert_close(grouped.path_scores, dense.path_scores, rtol=0, atol=0)
        for name in ("pruned_catalogue", "pruned_reflection", "merged"):
            assert torch.equal(getattr(dense, name), getattr(grouped, name)), (seed, name)
        assert torch.equal(torch.isfinite(dense.item_scores), torch.isfinite(grouped.item_scores)), seed
        reached += int(torch.isfinite(grouped.item_scores).sum())
        fin = torch.isfinite(dense.item_scores)
        torch.testing.assert_close(grouped.item_scores[fin], dense.item_scores[fin], rtol=1e-6, atol=1e-6)
    assert reached > 0  # (a plain search may reach no item for a user: its paths need not exist)


def test_grouped_wide_beam_matches_brute_force_on_a_random_catalogue():
    sizes = (3, 4, 3)
    index = random_catalogue(3, 30, sizes)
    step = random_step_fn(3, 3, sizes)
    cfg = BeamConfig(beam_size=200, pool_factor=4, reasoning_steps=2, branch=2, block_items=16)
    got = corp_beam_search(step, index, 3, cfg).item_scores
    ref = exhaustive_item_scores(step, index, 3, cfg)
    assert torch.equal(torch.isfinite(got), torch.isfinite(ref))
    torch.testing.assert_close(got[torch.isfinite(ref)], ref[torch.isfinite(ref)], rtol=1e-5, atol=1e-5)


def test_subset_groups_are_posting_list_intersections():
    index = random_catalogue(5, 60, (3, 4, 2, 3))
    for subset in range(16):
        groups = index.subset_groups(subset)
        codebooks = [r for r in range(4) if subset >> r & 1]
        assert groups.starts[-1] == 59 and sorted(groups.members.tolist()) == list(range(1, 60))
        assert int(groups.group_of[0]) == -1
        for g in range(groups.starts.numel() - 1):
            members = groups.members[groups.starts[g]: groups.starts[g + 1]]
            assert members.numel() > 0 and torch.equal(members, members.sort().values)
            tokens = index.codes[int(members[0]), codebooks].tolist()
            assert members.tolist() == index.consistent_items_reference(codebooks, tokens).tolist()
            assert (groups.group_of[members] == g).all()


def test_child_lookups_by_search_and_by_table_agree():
    """Counts and child groups per (parent group, token) by binary search over the sorted keys
    equal a count over the catalogue (the catalogue-wide table built from these splits:
    test_beam_ranking_fast_paths.py)."""
    index = random_catalogue(7, 80, (3, 4, 2, 3))
    d = index.max_size
    for subset in range(15):
        groups = index.subset_groups(subset)
        n_groups = groups.starts.numel() - 1
        parents = torch.arange(n_groups)
        for r in [r for r in range(4) if not subset >> r & 1]:
            searched = index.split_keys(subset, r)
            keys = groups.group_of[1:] * d + index.codes_t[r, 1:]
            expect = torch.bincount(keys, minlength=n_groups * d).view(n_groups, d)
            child_of_item = index.subset_groups(subset | 1 << r).group_of
            # (the catalogue-wide table is checked against this one in test_beam_ranking_fast_paths.py)
            counts, child = searched.lookup(parents, d)
            assert torch.equal(counts, expect)
            assert torch.equal(child >= 0, expect > 0)
            # the child group is the group of the items holding (parent group, token)
            items = torch.arange(1, index.n_items)
            assert torch.equal(child.view(-1)[keys], child_of_item[items])
