"""Which catalogue items each beam path is consistent with: the candidate bookkeeping of CORP.

Beam search asks three things of it, for ``[B users, K paths]``:

* :meth:`expand`: for every path, chosen codebook and token, how many items stay consistent and
  their total item-level probability (``[B, K, b, D]``, CORP's catalogue check and path prior);
* :meth:`select`: the bookkeeping of the K paths kept (parent path + one pair each);
* :meth:`completion`: after the last step, every consistent item's score (path score + the
  log-probabilities of its codebooks not emitted), log-sum-exp over paths, as a ``[B, N]`` tensor.

Two implementations give the same answers:

* :class:`GroupedCandidates` (used by the search): a path is one group id of
  :meth:`CatalogueIndex.subset_groups` for the set of codebooks it emitted, i.e. one segment of a
  sorted item list shared by the whole catalogue (a posting-list intersection stored once, not per
  path). Counts and child groups are D lookups per path in catalogue-level tables
  (:meth:`CatalogueIndex.subset_children`), with no item read; only the fused prior's masses read
  items: in the first steps one histogram pass over the catalogue per user serves all its paths,
  later each path's own few items (about ``N / D**s`` after s steps) are read, in blocks of at
  most ``block_items`` (path, item) pairs. Nothing grows with users x beam x N.
* :class:`DenseCandidates` (reference, tests): one ``[N]`` bool mask per path, narrowed one pair at
  a time; ``O(B * K * N)`` per step.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from .catalogue_index import CatalogueIndex, SubsetChildren

NEG_INF = float("-inf")
Stats = Tuple[torch.Tensor, Optional[torch.Tensor]]


def gather_paths(x: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """Select paths: ``x [B, K, ...]``, ``parent [B, K']`` -> ``[B, K', ...]`` (row indexing,
    cheaper than a ``gather`` with an expanded index)."""
    rows = torch.arange(x.size(0), device=x.device).unsqueeze(1)
    return x[rows, parent]


def _segments(lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """CSR expansion: ``lengths [R]`` -> (row of each entry, position inside its row), ``[sum]`` each."""
    row = torch.repeat_interleave(torch.arange(lengths.numel(), device=lengths.device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    return row, torch.arange(row.numel(), device=lengths.device) - first[row]


def _blocks(lengths: torch.Tensor, block_items: int) -> List[slice]:
    """Consecutive row ranges whose summed lengths stay within ``block_items`` (a longer row
    alone is one block)."""
    ends = torch.cumsum(lengths, 0).tolist()
    out, start, base = [], 0, 0
    for i, end in enumerate(ends):
        if end - base > block_items and i > start:
            out.append(slice(start, i))
            start, base = i, ends[i - 1]
    if start < len(ends):
        out.append(slice(start, len(ends)))
    return out


def _child_lookup(split, group: torch.Tensor, rows: torch.Tensor, counts: torch.Tensor, children: torch.Tensor) -> None:
    """``counts[rows]``, ``children[rows]`` (``[R, D]``, pre-filled with 0 / -1) = the token
    counts and child groups after each parent ``group [R]``.

    A searched split (:class:`SubsetChildren`) stores the children of one parent group as one
    run of its sorted keys: two binary searches per path find the run, and only the tokens some
    item holds are written (a few per path after the first steps), instead of D searches per path.
    """
    d = counts.size(1)
    if not isinstance(split, SubsetChildren):
        counts[rows], children[rows] = split.lookup(group, d)
        return
    lo = torch.searchsorted(split.keys, group * d)
    hi = torch.searchsorted(split.keys, group * d + d)
    entry, offset = _segments(hi - lo)
    key = lo[entry] + offset
    flat = rows[entry] * d + split.keys[key] % d
    counts.view(-1)[flat] = split.counts[key]
    children.view(-1)[flat] = split.groups[key]


class GroupedCandidates:
    """Sparse bookkeeping: per path the codebook subset it emitted (bit mask) and its group.

    Args:
        index: the catalogue index.
        subset: ``[B, K]`` long bit masks of the emitted codebooks.
        group: ``[B, K]`` long group ids in ``index.subset_groups(subset)`` (-1 = no item left).
        block_items: most (path, item) pairs handled by one tensor operation.
    """

    def __init__(self, index: CatalogueIndex, subset: torch.Tensor, group: torch.Tensor, block_items: int) -> None:
        self.index, self.subset, self.group, self.block_items = index, subset, group, block_items
        self._children: Optional[torch.Tensor] = None  # [B, K, b, D] group ids after expand

    @classmethod
    def root(cls, index: CatalogueIndex, n_users: int, block_items: int) -> "GroupedCandidates":
        """The empty path of each user: every real item (subset 0, group 0)."""
        zeros = torch.zeros(n_users, 1, dtype=torch.long, device=index.device)
        return cls(index, zeros, zeros.clone(), block_items)

    def _items(self, groups, path: torch.Tensor):
        """Per block of paths (flat ids, all of one subset): (entry's index into ``path``, item ids)."""
        g = self.group.reshape(-1)[path]
        lo = groups.starts[g]
        lengths = groups.starts[g + 1] - lo
        for blk in _blocks(lengths, self.block_items):
            entry, offset = _segments(lengths[blk])
            entry = entry + blk.start
            yield entry, groups.members[lo[entry] + offset]

    def expand(self, chosen: torch.Tensor, item_prob: Optional[torch.Tensor], live: torch.Tensor) -> Stats:
        """Consistent-item counts and masses per (path, chosen codebook, token).

        Counts (and the child groups :meth:`select` needs) are read from
        :meth:`CatalogueIndex.subset_children`, D keys per (path, codebook); only the masses read
        each path's items: the first step reads the catalogue once per user, later steps the few
        items of each path (paths of one subset hold disjoint groups).

        Args:
            chosen: ``[B, K, b]`` codebooks each path may emit on; item_prob: ``[B, N]`` or None;
            live: ``[B, K]`` bool, paths still alive (dead paths get no item).

        Returns:
            counts ``[B, K, b, D]`` and masses ``[B, K, b, D]`` (None without ``item_prob``).
        """
        b, k, nb = chosen.shape
        d, index = self.index.max_size, self.index
        device = chosen.device
        counts = torch.zeros(b * k * nb, d, dtype=torch.long, device=device)
        children = torch.full((b * k * nb, d), -1, dtype=torch.long, device=device)
        masses = torch.zeros(b * k * nb, d, dtype=item_prob.dtype, device=device) if item_prob is not None else None
        path = torch.arange(b * k, device=device).repeat_interleave(nb)  # [R] path of each (path, branch) row
        codebook = chosen.reshape(-1)
        subset, group = self.subset.reshape(-1)[path], self.group.reshape(-1)[path]
        pair = torch.where(live.reshape(-1)[path] & (group >= 0), subset * index.n_codebooks + codebook, -1)
        for key in pair.unique().tolist():
            if key < 0:
                continue
            s, r = divmod(key, index.n_codebooks)
            rows = (pair == key).nonzero().squeeze(1)
            _child_lookup(index.subset_children(s, r), group[rows], rows, counts, children)
            if masses is not None:
                self._add_masses(masses, rows, path[rows], k, s, r, item_prob)
        self._children = children.view(b, k, nb, d)
        shape = (b, k, nb, d)
        return counts.view(shape).float(), (masses.view(shape) if masses is not None else None)

    def _add_masses(self, masses, rows, path, k: int, subset: int, codebook: int, item_prob) -> None:
        """``masses[row, t]`` += item probability of the row's (its path's) items holding token t
        on ``codebook``; ``rows``, ``path`` ``[R']``, K paths per user, every path on ``subset``.

        Where ``subset`` has few groups (the first steps), one histogram per user over every
        (group, token) pair is a single pass over the catalogue that serves all the user's paths;
        later, each path's own (few) items are read.
        """
        index = self.index
        d, n = index.max_size, index.n_items
        groups = index.subset_groups(subset)
        n_groups = groups.starts.numel() - 1
        if n_groups * d <= 2 * n:
            key = (groups.group_of[1:] * d + index.codes_t[codebook, 1:]).unsqueeze(0)  # [1, N - 1]
            users, local = torch.unique(path // k, return_inverse=True)
            tokens = torch.arange(d, device=masses.device)
            for blk in _blocks(torch.full_like(users, n), self.block_items):
                hist = masses.new_zeros(blk.stop - blk.start, n_groups * d)
                hist.scatter_add_(1, key.expand(hist.size(0), -1), item_prob[users[blk], 1:])
                mine = ((local >= blk.start) & (local < blk.stop)).nonzero().squeeze(1)
                slot = ((local[mine] - blk.start) * (n_groups * d) + self.group.reshape(-1)[path[mine]] * d).unsqueeze(1)
                masses[rows[mine]] += hist.view(-1)[slot + tokens]
            return
        codes = index.codes_t[codebook]
        flat_prob = item_prob.reshape(-1)
        user = path // k
        for entry, item in self._items(groups, path):
            slot = rows[entry] * d + codes[item]
            masses.view(-1).index_add_(0, slot, flat_prob[user[entry] * n + item])

    def select(self, parent: torch.Tensor, branch: torch.Tensor, codebook: torch.Tensor, token: torch.Tensor):
        """The kept paths: ``parent``, ``branch`` (index into the chosen codebooks), ``codebook``,
        ``token``, each ``[B, K']``; call after :meth:`expand`."""
        rows = torch.arange(parent.size(0), device=parent.device).unsqueeze(1)
        group = self._children[rows, parent, branch, token]
        subset = gather_paths(self.subset, parent) | (1 << codebook)
        return GroupedCandidates(self.index, subset, group, self.block_items)

    def completion(self, score: torch.Tensor, log_probs: torch.Tensor, emitted: torch.Tensor) -> torch.Tensor:
        """Item scores after the last step (see the module docstring): ``score [B, K]``,
        ``log_probs [B, K, M, D]`` (None when every path emitted every codebook), ``emitted
        [B, K, M]`` -> ``[B, N]`` (-inf = not reached)."""
        b, k = score.shape
        n, index = self.index.n_items, self.index
        out = torch.full((b * n,), NEG_INF, device=score.device)
        flat_score = score.reshape(-1)
        flat_lp = log_probs.reshape(b * k, index.n_codebooks, -1) if log_probs is not None else None
        live = (torch.isfinite(score) & (self.group >= 0)).reshape(-1)
        for subset in self.subset.reshape(-1)[live].unique().tolist():
            path = (live & (self.subset.reshape(-1) == subset)).nonzero().squeeze(1)
            for entry, item in self._items(index.subset_groups(subset), path):
                vals = flat_score[path[entry]]
                for r in range(index.n_codebooks):
                    if not subset >> r & 1:  # every path of this subset emitted the same codebooks
                        vals = vals + flat_lp[path[entry], r, index.codes_t[r, item]]
                _log_add_into(out, (path[entry] // k) * n + item, vals)
        return out.view(b, n)


def _log_add_into(out: torch.Tensor, slot: torch.Tensor, vals: torch.Tensor) -> None:
    """``out[s] = log(exp(out[s]) + sum of exp(vals) at s)`` for repeated slots, touching only the
    slots given (work proportional to ``vals``, not to ``out``)."""
    uniq, inv = torch.unique(slot, return_inverse=True)
    best = torch.full((uniq.numel(),), NEG_INF, device=vals.device).scatter_reduce(0, inv, vals, "amax")
    best = torch.maximum(best, out[uniq])
    safe = torch.where(torch.isfinite(best), best, torch.zeros_like(best))
    total = (out[uniq] - safe).exp().index_add_(0, inv, (vals - safe[inv]).exp())
    out[uniq] = torch.where(torch.isfinite(best), safe + total.log(), best)


class DenseCandidates:
    """Reference bookkeeping: one ``[N]`` bool consistency mask per path (``items [B, K, N]``)."""

    def __init__(self, index: CatalogueIndex, items: torch.Tensor) -> None:
        self.index, self.items = index, items

    @classmethod
    def root(cls, index: CatalogueIndex, n_users: int) -> "DenseCandidates":
        return cls(index, index.initial_mask(n_users, 1))

    def expand(self, chosen: torch.Tensor, item_prob: Optional[torch.Tensor], live: torch.Tensor) -> Stats:
        """As :meth:`GroupedCandidates.expand` (``live`` is not needed: dead paths are -inf anyway)."""
        counts, masses = [], []
        for j in range(chosen.size(-1)):  # branch factor, usually 1
            c, w = self.index.candidate_tokens(self.items, chosen[..., j], item_prob)
            counts.append(c)
            masses.append(w)
        return torch.stack(counts, 2), (torch.stack(masses, 2) if item_prob is not None else None)

    def select(self, parent: torch.Tensor, branch: torch.Tensor, codebook: torch.Tensor, token: torch.Tensor):
        return DenseCandidates(self.index, self.index.narrow(gather_paths(self.items, parent), codebook, token))

    def completion(self, score: torch.Tensor, log_probs: torch.Tensor, emitted: torch.Tensor) -> torch.Tensor:
        """As :meth:`GroupedCandidates.completion`."""
        index = self.index
        b, k, n = self.items.shape
        items = self.items & torch.isfinite(score).unsqueeze(-1)
        bi, ki, ni = items.nonzero(as_tuple=True)  # consistent (user, path, item) triples
        vals = score[bi, ki]
        for r in range(index.n_codebooks):
            if bool(emitted[..., r].all()):
                continue
            lp = log_probs[bi, ki, r, index.codes_t[r, ni]]
            vals = vals + lp.masked_fill(emitted[bi, ki, r], 0.0)
        flat = bi * n + ni
        best = torch.full((b * n,), NEG_INF, device=score.device).scatter_reduce(0, flat, vals, "amax")
        total = torch.zeros(b * n, device=score.device).index_add_(0, flat, (vals - best[flat]).exp())
        return (best + total.log()).view(b, n)
