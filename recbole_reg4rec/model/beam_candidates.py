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
  path). Counts are read from catalogue-level split tables (:meth:`CatalogueIndex.split_lookup`)
  with no item read, and a kept path's group is one lookup there; only the fused prior's masses
  read items: at the first step one histogram pass over the catalogue per user, later each
  path's own few items (about ``N / D**s`` after s steps), in blocks of at most ``block_items``
  (path, item) pairs. Paths on different codebook subsets share every tensor operation (the
  tables of all subsets are concatenated). Nothing grows with users x beam x N.
* :class:`DenseCandidates` (reference, tests): one ``[N]`` bool mask per path, narrowed one pair at
  a time; ``O(B * K * N)`` per step.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from .catalogue_index import CatalogueIndex

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
    ends = torch.cumsum(lengths, 0)
    if ends.numel() == 0 or int(ends[-1]) <= block_items:  # the common case: one block
        return [slice(0, lengths.numel())]
    out, start, base = [], 0, 0
    for i, end in enumerate(ends.tolist()):
        if end - base > block_items and i > start:
            out.append(slice(start, i))
            start, base = i, ends[i - 1]
    if start < len(ends):
        out.append(slice(start, len(ends)))
    return out


class GroupedCandidates:
    """Sparse bookkeeping: per path the codebook subset it emitted (bit mask) and its group.

    Paths on different subsets are handled by the same tensor operations: their groups' items
    and splits are read from the catalogue-wide concatenated tables of
    :meth:`CatalogueIndex.group_segments` and :meth:`CatalogueIndex.split_lookup`.

    Args:
        index: the catalogue index.
        subset: ``[B, K]`` long bit masks of the emitted codebooks.
        group: ``[B, K]`` long group ids in ``index.subset_groups(subset)`` (-1 = no item left).
        block_items: most (path, item) pairs handled by one tensor operation.
    """

    def __init__(self, index: CatalogueIndex, subset: torch.Tensor, group: torch.Tensor, block_items: int) -> None:
        self.index, self.subset, self.group, self.block_items = index, subset, group, block_items

    @classmethod
    def root(cls, index: CatalogueIndex, n_users: int, block_items: int) -> "GroupedCandidates":
        """The empty path of each user: every real item (subset 0, group 0)."""
        zeros = torch.zeros(n_users, 1, dtype=torch.long, device=index.device)
        return cls(index, zeros, zeros.clone(), block_items)

    def _items(self, subset: torch.Tensor, group: torch.Tensor):
        """The items of R groups (any subsets), in blocks of at most ``block_items``: yields the
        row of each entry and the item ids, ``[E]`` each (items ascending within a row)."""
        lo, hi = self.index.group_segments(subset, group)
        lengths = hi - lo
        ends = torch.cumsum(lengths, 0)
        for blk in _blocks(lengths, self.block_items):
            counts = lengths[blk]
            total = int(counts.sum())
            row = torch.repeat_interleave(torch.arange(blk.start, blk.stop, device=lo.device), counts, output_size=total)
            # position in all_members = segment start + (entry number - entries before the row)
            first = int(ends[blk.start] - lengths[blk.start]) if total else 0
            pos = (lo - (ends - lengths))[row] + torch.arange(first, first + total, device=lo.device)
            yield row, self.index.all_members[pos]

    def expand(self, chosen: torch.Tensor, item_prob: Optional[torch.Tensor], live: torch.Tensor) -> Stats:
        """Consistent-item counts and masses per (path, chosen codebook, token).

        Masses read items: where a subset has few groups (the first steps), one histogram of the
        catalogue per user and (subset, codebook) serves all the user's paths on it; beyond, each
        path's own items are read (``N / D**s`` of them after s steps), which give the counts too.
        Other counts are read from the catalogue's splits (about D keys per (path, codebook), no
        item read).

        Args:
            chosen: ``[B, K, b]`` codebooks each path may emit on; item_prob: ``[B, N]`` or None;
            live: ``[B, K]`` bool, paths still alive (dead paths get no item).

        Returns:
            counts ``[B, K, b, D]`` and masses ``[B, K, b, D]`` (None without ``item_prob``).
        """
        b, k, nb = chosen.shape
        d, n, index = self.index.max_size, self.index.n_items, self.index
        device = chosen.device
        path = torch.arange(b * k, device=device).repeat_interleave(nb)  # [R] path of each (path, branch) row
        subset, group = self.subset.reshape(-1)[path], self.group.reshape(-1)[path]
        rows = (live.reshape(-1)[path] & (group >= 0)).nonzero().squeeze(1)  # rows with items
        path, subset, group, codebook = path[rows], subset[rows], group[rows], chosen.reshape(-1)[rows]
        shape = (b, k, nb, d)
        counts = torch.zeros(b * k * nb * d, device=device)
        if item_prob is None:
            self._table_counts(counts, rows, subset, codebook, group)
            return counts.view(shape), None
        masses = torch.zeros(b * k * nb, d, dtype=item_prob.dtype, device=device)
        user = path // k
        few = index.few_groups(subset)  # [R] bool: the row's subset is read by histograms
        if bool(few.any()):
            sel = few.nonzero().squeeze(1)
            self._table_counts(counts, rows[sel], subset[sel], codebook[sel], group[sel])
            pair = subset * index.n_codebooks + codebook
            for key in pair[sel].unique().tolist():
                mine = (few & (pair == key)).nonzero().squeeze(1)
                self._histogram_masses(masses, rows[mine], user[mine], group[mine], *divmod(key, index.n_codebooks), item_prob)
            rest = (~few).nonzero().squeeze(1)  # the other rows read their items
            rows, user, subset, group, codebook = rows[rest], user[rest], subset[rest], group[rest], codebook[rest]
        flat_prob, flat_codes, flat = item_prob.reshape(-1), index.codes_t.reshape(-1), masses.view(-1)
        for row, item in self._items(subset, group):
            slot = rows[row] * d + flat_codes[codebook[row] * n + item]
            # one slot's items come in ascending id order: the sums equal the dense reference's
            flat.index_add_(0, slot, flat_prob[user[row] * n + item])
            counts.index_add_(0, slot, torch.ones_like(slot, dtype=counts.dtype))
        return counts.view(shape), masses.view(shape)

    def _table_counts(self, counts, rows, subset, codebook, group) -> None:
        """``counts[rows * D + token]`` = items of each row's group holding ``token`` on its
        ``codebook``, read from the catalogue's splits (no item read)."""
        index, d = self.index, self.index.max_size
        lo, hi = index.split_lookup(subset, codebook, group)
        entry, offset = _segments(hi - lo)
        key = lo[entry] + offset
        counts[rows[entry] * d + index.all_splits.keys[key] % d] = index.all_splits.counts[key].to(counts.dtype)

    def _histogram_masses(self, masses, rows, user, group, subset: int, codebook: int, item_prob) -> None:
        """``masses[rows] =`` item probability per token of ``codebook`` of each row's items, for
        rows of one ``subset``: one pass over the catalogue per user builds every (group, token)
        bin of that user, then each row reads its group's D bins."""
        index = self.index
        d, n = index.max_size, index.n_items
        groups = index.subset_groups(subset)
        n_bins = (groups.starts.numel() - 1) * d
        key = (groups.group_of[1:] * d + index.codes_t[codebook, 1:]).unsqueeze(0)  # [1, N - 1]
        users, local = torch.unique(user, return_inverse=True)
        tokens = torch.arange(d, device=masses.device)
        per_block = max(1, self.block_items // max(n, n_bins))
        for start in range(0, users.numel(), per_block):
            block = users[start:start + per_block]
            hist = masses.new_zeros(block.numel(), n_bins).scatter_add_(1, key.expand(block.numel(), -1), item_prob[block, 1:])
            mine = ((local >= start) & (local < start + block.numel())).nonzero().squeeze(1)
            slot = ((local[mine] - start) * n_bins + group[mine] * d).unsqueeze(1) + tokens
            masses[rows[mine]] = hist.view(-1)[slot]

    def select(self, parent: torch.Tensor, branch: torch.Tensor, codebook: torch.Tensor, token: torch.Tensor):
        """The kept paths: ``parent``, ``branch`` (index into the chosen codebooks), ``codebook``,
        ``token``, each ``[B, K']``: the child group of the parent's group is one split lookup."""
        subset = gather_paths(self.subset, parent)
        group = self.index.child_groups(
            subset.reshape(-1), codebook.reshape(-1), gather_paths(self.group, parent).reshape(-1), token.reshape(-1)
        ).view_as(parent)
        return GroupedCandidates(self.index, subset | (1 << codebook), group, self.block_items)

    def completion(self, score: torch.Tensor, log_probs: Optional[torch.Tensor], emitted: torch.Tensor) -> torch.Tensor:
        """Item scores after the last step (see the module docstring): ``score [B, K]``,
        ``log_probs [B, K, M, D]`` (None when every path emitted every codebook), ``emitted
        [B, K, M]`` -> ``[B, N]`` (-inf = not reached)."""
        b, k = score.shape
        n, index = self.index.n_items, self.index
        out = torch.full((b * n,), NEG_INF, device=score.device)
        flat_score = score.reshape(-1)
        path = (torch.isfinite(flat_score) & (self.group.reshape(-1) >= 0)).nonzero().squeeze(1)
        subset = self.subset.reshape(-1)[path]
        missing = [r for r in range(index.n_codebooks) if not bool(((subset >> r) & 1).all())]
        flat_lp = log_probs.reshape(b * k, index.n_codebooks, -1) if missing else None
        for entry, item in self._items(subset, self.group.reshape(-1)[path]):
            row, row_subset = path[entry], subset[entry]
            vals = flat_score[row]
            for r in missing:  # in codebook order, as the dense reference adds them
                lp = flat_lp[row, r, index.codes_t[r, item]]
                vals = vals + torch.where((row_subset >> r) & 1 == 1, torch.zeros_like(lp), lp)
            _log_add_into(out, (row // k) * n + item, vals)
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
