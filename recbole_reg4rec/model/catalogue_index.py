"""Inverted (codebook, token) -> items index of the catalogue, and the consistency checks of CORP.

A *path* is a set of (codebook, token) pairs. An item is *consistent* with a path when it holds
every pair of the path; a path is *catalogue-consistent* when at least one item is.

Three forms of the same index are kept:

* posting lists (``items_with(r, t)``), the plain inverted index, used by the reference
  checks and by explanations;
* token-set groups per codebook subset (:meth:`subset_groups`), with which beam search carries
  a path's consistent items as one group id: for a subset U of codebooks, the items are sorted
  by their tokens on U, so the items that share the path's tokens on U are one contiguous
  segment (a posting-list intersection stored once for the whole catalogue, not per path);
* the dense transposed code table ``codes_t [M, N]`` and dense posting masks ``has [M, D, N]``,
  with which a batch of paths is checked with ``[N]`` bool masks narrowed one pair at a time
  (the plain tensor form, kept as the reference of the grouped form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch


@dataclass
class SubsetGroups:
    """Items grouped by their tokens on one subset U of codebooks (real items only).

    Group ``g`` holds the items ``members[starts[g]:starts[g + 1]]`` (ascending ids): the items
    consistent with any path whose emitted pairs are on exactly the codebooks of U.
    """

    group_of: torch.Tensor  # [N] long, group of each item (-1 for the padding item)
    members: torch.Tensor  # [N - 1] long, item ids sorted by group, then by id
    starts: torch.Tensor  # [G + 1] long, segment offsets of the groups in members


@dataclass
class SubsetChildren:
    """How the groups of a subset S split when codebook r is added (U = S + r).

    Every (group g of S, token t on r) that some item holds is one key ``g * D + t``.
    """

    keys: torch.Tensor  # [C] long, sorted keys g * D + t
    counts: torch.Tensor  # [C] long, items holding the key's tokens
    groups: torch.Tensor  # [C] long, the key's group in U

    def lookup(self, group: torch.Tensor, max_size: int):
        """Counts and child groups of every token after each parent group: ``group [R]`` ->
        ``[R, D]`` each (count 0 and group -1 where no item holds the pair). The one-split
        reference of :meth:`CatalogueIndex.split_lookup` / :meth:`CatalogueIndex.child_groups`."""
        query = group.unsqueeze(1) * max_size + torch.arange(max_size, device=group.device)  # [R, D]
        pos = torch.searchsorted(self.keys, query).clamp_max(self.keys.numel() - 1)
        hit = self.keys[pos] == query
        return torch.where(hit, self.counts[pos], 0), torch.where(hit, self.groups[pos], -1)


class CatalogueIndex:
    """Index over ``codes [N, M]`` (row 0 = RecBole's padding item, never a result)."""

    def __init__(self, codes: torch.Tensor, codebook_sizes: Sequence[int]) -> None:
        self.codes = codes.long()  # [N, M]
        self.codebook_sizes = tuple(int(d) for d in codebook_sizes)
        self.n_items, self.n_codebooks = self.codes.shape
        self.max_size = max(self.codebook_sizes)
        self.real_items = torch.ones(self.n_items, dtype=torch.bool, device=codes.device)  # [N]
        self.real_items[0] = False
        # pad item's pad codes may equal max_size: keep them in range, the item is masked anyway
        self.codes_t = self.codes.t().clamp(max=self.max_size - 1).contiguous()  # [M, N]
        offsets = torch.arange(self.n_codebooks, device=codes.device).unsqueeze(1) * self.max_size
        lengths = torch.bincount((self.codes_t[:, 1:] + offsets).reshape(-1), minlength=self.n_codebooks * self.max_size)
        self.posting_lengths = lengths.view(self.n_codebooks, self.max_size)  # [M, D] items per (r, t)
        self.token_exists = self.posting_lengths > 0  # [M, D] tokens some real item holds
        self._has: torch.Tensor | None = None
        self._subset_groups: Dict[int, SubsetGroups] = {}
        # every subset's groups and every split used so far, concatenated (see group_segments)
        self._segment_base: Dict[int, int] = {}
        self.all_starts = torch.zeros(0, dtype=torch.long, device=codes.device)
        self.all_members = torch.zeros(0, dtype=torch.long, device=codes.device)
        self._split_base: Dict[int, int] = {}
        self._split_end = 0
        self.all_splits = SubsetChildren(*(torch.zeros(0, dtype=torch.long, device=codes.device) for _ in range(3)))
        self._postings: List[Dict[int, torch.Tensor]] | None = None
        self._padded_postings: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.codes.device

    @property
    def has(self) -> torch.Tensor:
        """Dense posting lists: ``has[r, t]`` = bool mask of the items holding token ``t`` on
        codebook ``r``, ``[M, D, N]`` (built on first use: M * D * N bytes)."""
        if self._has is None:
            tokens = torch.arange(self.max_size, device=self.device).view(1, -1, 1)
            self._has = (self.codes_t.unsqueeze(1) == tokens) & self.real_items
        return self._has

    # ---- token-set groups (sparse form used by beam search) -----------------------------------
    def subset_groups(self, subset: int) -> SubsetGroups:
        """The items grouped by their tokens on the codebooks of ``subset`` (a bit mask: bit r =
        codebook r), built on first use from the subset without its highest codebook and cached:
        O(N log N) once per subset, shared by every user and path."""
        if subset not in self._subset_groups:
            real = torch.arange(1, self.n_items, device=self.device)
            if subset == 0:
                group = torch.zeros(self.n_items - 1, dtype=torch.long, device=self.device)
            else:
                top = subset.bit_length() - 1
                parent = self.subset_groups(subset & ~(1 << top)).group_of[real]
                # group ids stay below N, so parent group * D + token never overflows
                group = torch.unique(parent * self.max_size + self.codes_t[top, real], return_inverse=True)[1]
            order = torch.sort(group, stable=True).indices
            starts = torch.zeros(int(group.max()) + 2, dtype=torch.long, device=self.device)
            starts[1:] = torch.bincount(group).cumsum(0)
            group_of = torch.full((self.n_items,), -1, dtype=torch.long, device=self.device)
            group_of[real] = group
            self._subset_groups[subset] = SubsetGroups(group_of, real[order], starts)
        return self._subset_groups[subset]

    def split_keys(self, subset: int, codebook: int) -> SubsetChildren:
        """How ``subset``'s groups split when ``codebook`` is added: the (parent group, token)
        keys some item holds, with their item counts and child groups (O(N log N); cached in
        :attr:`all_splits` by :meth:`split_lookup`)."""
        real = torch.arange(1, self.n_items, device=self.device)
        key = self.subset_groups(subset).group_of[real] * self.max_size + self.codes_t[codebook, real]
        keys, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
        child = self.subset_groups(subset | (1 << codebook)).group_of[real]
        groups = torch.empty_like(keys).scatter_(0, inverse, child)  # equal within a key
        return SubsetChildren(keys, counts, groups)

    # ---- many subsets at once (the vectorized bookkeeping of beam search) ----------------------
    def few_groups(self, subset: torch.Tensor) -> torch.Tensor:
        """``[R]`` bool: whether each subset's groups x D tokens are at most two catalogues, i.e.
        a histogram of the whole catalogue over them costs about as much as reading it once."""
        uniq, inverse = torch.unique(subset, return_inverse=True)
        groups = [self.subset_groups(s).starts.numel() - 1 for s in uniq.tolist()]
        return (torch.tensor(groups, dtype=torch.long, device=subset.device) * self.max_size <= 2 * self.n_items)[inverse]

    def group_segments(self, subset: torch.Tensor, group: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Where the items of R groups lie in :attr:`all_members`, the groups of any subsets:
        ``subset, group [R]`` (bit mask, group id in :meth:`subset_groups`) -> ``lo, hi [R]``.

        :attr:`all_starts` / :attr:`all_members` hold the segments of every subset used so far,
        one after the other (appended on first use), so paths on different subsets are read by
        one tensor operation instead of one per subset."""
        pos = _part_offsets(subset, self._segment_base, self._append_segments) + group
        return self.all_starts[pos], self.all_starts[pos + 1]

    def _append_segments(self, subset: int) -> int:
        groups = self.subset_groups(subset)
        base = self.all_starts.numel()
        self.all_starts = torch.cat([self.all_starts, groups.starts + self.all_members.numel()])
        self.all_members = torch.cat([self.all_members, groups.members])
        return base

    def split_lookup(
        self, subset: torch.Tensor, codebook: torch.Tensor, group: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The children of R parent groups when a codebook is added, any subsets and codebooks at
        once: ``subset, codebook, group [R]`` -> ``lo, hi [R]``: the keys ``all_splits.keys[lo:hi]``
        are the (parent group, token) pairs some item holds, the token = key % D, with their item
        counts and child groups in ``all_splits.counts`` / ``.groups``.

        :attr:`all_splits` concatenates the searched splits (:meth:`split_keys`) of every
        (subset, codebook) used so far, each shifted by a multiple of D so that the keys stay sorted."""
        pair = subset * self.n_codebooks + codebook
        first = _part_offsets(pair, self._split_base, self._append_split) + group * self.max_size
        keys = self.all_splits.keys  # read after the lookup above appended any missing split
        return torch.searchsorted(keys, first), torch.searchsorted(keys, first + self.max_size)

    def child_groups(
        self, subset: torch.Tensor, codebook: torch.Tensor, group: torch.Tensor, token: torch.Tensor
    ) -> torch.Tensor:
        """Group (in ``subset | 1 << codebook``) of the items of ``group`` that hold ``token`` on
        ``codebook``, ``[R]`` each -> ``[R]`` (-1 where no item does or ``group`` is -1)."""
        pair = subset * self.n_codebooks + codebook
        query = _part_offsets(pair, self._split_base, self._append_split) + group * self.max_size + token
        if query.numel() == 0:
            return group.clone()
        keys = self.all_splits.keys  # read after the lookup above appended any missing split
        pos = torch.searchsorted(keys, query).clamp_max(keys.numel() - 1)
        hit = (group >= 0) & (keys[pos] == query)  # group -1 would read the previous split's keys
        return torch.where(hit, self.all_splits.groups[pos], -1)

    def _append_split(self, pair: int) -> int:
        subset, codebook = divmod(pair, self.n_codebooks)
        split = self.split_keys(subset, codebook)
        base = self._split_end
        old = self.all_splits
        self.all_splits = SubsetChildren(
            torch.cat([old.keys, split.keys + base]), torch.cat([old.counts, split.counts]),
            torch.cat([old.groups, split.groups]),
        )
        self._split_end += (self.subset_groups(subset).starts.numel() - 1) * self.max_size
        return base

    # ---- plain inverted index -------------------------------------------------------------
    def postings(self) -> List[Dict[int, torch.Tensor]]:
        """``postings()[r][t]`` = sorted item ids holding token ``t`` on codebook ``r``."""
        if self._postings is None:
            codes = self.codes[1:].cpu()
            self._postings = []
            for r in range(self.n_codebooks):
                lists: Dict[int, torch.Tensor] = {}
                for t in codes[:, r].unique().tolist():
                    lists[int(t)] = (codes[:, r] == t).nonzero().squeeze(1) + 1
                self._postings.append(lists)
        return self._postings

    def items_with(self, codebook: int, token: int) -> torch.Tensor:
        """Item ids holding ``token`` on ``codebook`` (posting list), ``[n]`` long (CPU)."""
        return self.postings()[codebook].get(int(token), torch.empty(0, dtype=torch.long))

    def consistent_items_reference(self, codebooks: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
        """Plain reference: intersect the posting lists of a path's pairs. Returns item ids (CPU)."""
        items = torch.arange(1, self.n_items)
        for r, t in zip(codebooks, tokens):
            items = items[torch.isin(items, self.items_with(int(r), int(t)))]
        return items

    def contradicts(self, item: int, codebooks: Sequence[int], tokens: Sequence[int]) -> bool:
        """True when ``item`` differs from the path on one of the path's codebooks."""
        row = self.codes[item]
        return any(int(row[int(r)]) != int(t) for r, t in zip(codebooks, tokens))

    # ---- batched candidate lists (sampling paths: few items per path after one step) ----------
    def padded_postings(self) -> torch.Tensor:
        """Posting lists as one tensor ``[M, D, P]``: row ``(r, t)`` = the items holding token
        ``t`` on codebook ``r``, then zeros (item 0 is RecBole's padding item, never real);
        ``P`` = the longest posting list."""
        if self._padded_postings is None:
            longest = int(self.posting_lengths.max())
            # a stable sort of "not held" puts each list's items first, in id order
            first = torch.sort((~self.has).to(torch.uint8), dim=-1, stable=True).indices[..., :longest]
            self._padded_postings = first * self.has.gather(-1, first)  # [M, D, P]
        return self._padded_postings

    def postings_of(self, codebook: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """The posting lists of R (codebook, token) pairs, ``[R]`` each -> ``[R, W]`` item ids
        (0 = empty slot), W = the longest of these R lists rather than of the whole index: one
        huge list elsewhere (e.g. the de-duplication codebook of residual IDs, held by almost
        every item) must not widen every path's candidate list."""
        width = max(int(self.posting_lengths[codebook, token].max()), 1) if codebook.numel() else 1
        return self.padded_postings()[codebook, token, :width]

    def allowed_tokens(self, items: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Tokens of one codebook held by at least one of each path's candidate items.

        Args:
            items: ``[R, P]`` candidate item ids of R paths (0 = empty slot).
            codebook: ``[R]`` codebook each path emits on next.

        Returns:
            ``[R, D]`` bool.
        """
        return self.candidate_token_sums(items, codebook, (items > 0).float()) > 0

    def candidate_token_sums(self, items: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Per token of one codebook, the sum of each path's candidate weights over the candidates
        holding it: ``items [R, P]`` (0 = empty slot), ``codebook [R]``, ``weights [R, P]`` (0 on
        empty slots) -> ``[R, D]`` (e.g. counts, or the item-prior mass of steered rollouts)."""
        held = self.codes_t[codebook.unsqueeze(1), items]  # [R, P]
        return weights.new_zeros(items.size(0), self.max_size).scatter_add_(1, held, weights)

    def narrow_items(self, items: torch.Tensor, codebook: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Keep the candidates holding ``token`` on ``codebook``: ``items [R, P]``, ``codebook,
        token [R]`` -> ``[R, P]`` (dropped slots become 0)."""
        keep = self.codes_t[codebook.unsqueeze(1), items] == token.unsqueeze(1)
        return items * keep

    # ---- batched tensor form ----------------------------------------------------------------
    def initial_mask(self, *lead: int) -> torch.Tensor:
        """Items consistent with the empty path: every real item. ``[*lead, N]`` bool."""
        return self.real_items.expand(*lead, self.n_items).clone()

    def narrow(self, mask: torch.Tensor, codebook: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Add one pair to each path: ``mask [B, K, N]``, ``codebook, token [B, K]`` -> ``[B, K, N]``."""
        return mask & self.has[codebook, token]

    def token_mass(self, weights: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Sum of item weights per token of one codebook per path.

        Args:
            weights: ``[B, K, N]`` float, e.g. the consistency mask (counts) or mask * p(item).
            codebook: ``[B, K]`` long, the codebook each path may emit on.

        Returns:
            ``[B, K, D]``: entry ``t`` = sum of ``weights`` over items whose token on that
            codebook is ``t`` (0 = emitting ``t`` would leave no consistent item).
        """
        return self.candidate_tokens(weights != 0, codebook, weights)[1]

    def candidate_tokens(
        self, mask: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
    ) -> tuple:
        """Counts (and weight sums) of consistent items per token of one codebook per path.

        Works on the non-zero entries of ``mask`` only (a path's consistent items are few after
        its first step), reading each item's token on the path's codebook.

        Args:
            mask: ``[B, K, N]`` bool consistency masks; codebook: ``[B, K]`` long.
            weights: ``[B, K, N]`` or ``[B, N]`` (shared by a user's paths) float, or None.

        Returns:
            counts ``[B, K, D]`` and weight sums ``[B, K, D]`` (None without ``weights``).
        """
        b, k, _ = mask.shape
        bi, ki, ni = mask.nonzero(as_tuple=True)
        flat = ((bi * k + ki) * self.max_size) + self.codes_t[codebook[bi, ki], ni]
        counts = torch.zeros(b * k * self.max_size, device=mask.device).index_add_(
            0, flat, torch.ones_like(flat, dtype=torch.float)
        )
        sums = None
        if weights is not None:
            vals = weights[bi, ki, ni] if weights.dim() == 3 else weights[bi, ni]
            sums = torch.zeros(b * k * self.max_size, device=mask.device, dtype=vals.dtype).index_add_(0, flat, vals)
            sums = sums.view(b, k, self.max_size)
        return counts.view(b, k, self.max_size), sums

    def token_mass_reference(self, weights: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
        """Plain loop version of :meth:`token_mass` through the posting lists (tests only)."""
        b, k, _ = weights.shape
        out = weights.new_zeros(b, k, self.max_size)
        for i in range(b):
            for j in range(k):
                r = int(codebook[i, j])
                for t, items in self.postings()[r].items():
                    out[i, j, t] = weights[i, j, items.to(weights.device)].sum()
        return out


def _part_offsets(keys: torch.Tensor, offsets: Dict[int, int], append: Callable[[int], int]) -> torch.Tensor:
    """Offset of each key's part in a concatenated table, ``keys [R]`` -> ``[R]``; parts not in
    ``offsets`` yet are appended (``append(key)`` returns the new part's offset)."""
    if keys.numel() == 0:
        return keys.clone()
    uniq, inverse = torch.unique(keys, return_inverse=True)
    values = []
    for key in uniq.tolist():
        if key not in offsets:
            offsets[key] = append(key)
        values.append(offsets[key])
    return torch.tensor(values, dtype=torch.long, device=keys.device)[inverse]
