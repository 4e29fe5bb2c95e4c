"""Building blocks of the REG4Rec generator: token embeddings, the beam-aware decoder, output heads.

Shapes use ``B`` users, ``K`` beams (paths) per user, ``S`` decoder positions, ``T`` history length,
``H`` hidden size, ``M`` codebooks and ``D`` = the largest codebook size (``max(D_r)``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, same mask and values, drawn faster where that is exact.

    Torch draws a dropout mask as ``bernoulli_(1 - p)``; on CPUs where that kernel takes its
    per-element path (not Intel's MKL one) the mask is ``rand(float64) < 1 - p`` of the same
    generator, which torch draws about twice as fast. Used only where a one-time check
    (:func:`_rand_masks_match`) confirms the two give identical masks and generator states, and
    for contiguous float CPU tensors (filled in the same element order); elsewhere ``F.dropout``.
    """
    if (
        training and 0.0 < p < 1.0 and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
        and x.is_contiguous() and _rand_masks_match()
    ):
        return x * (torch.rand(x.shape, dtype=torch.float64) < 1.0 - p).to(x.dtype).div_(1.0 - p)
    return F.dropout(x, p, training)


@functools.lru_cache(maxsize=None)
def _rand_masks_match() -> bool:
    """Whether ``bernoulli_`` and ``rand(float64) <`` draw the same masks from the default CPU
    generator here (and leave it in the same state); the generator is restored afterwards."""
    state = torch.get_rng_state()
    try:
        mask = torch.empty(4099).bernoulli_(0.3)
        after = torch.rand(8)
        torch.set_rng_state(state)
        same = torch.equal(mask.bool(), torch.rand(4099, dtype=torch.float64) < 0.3)
        return same and torch.equal(after, torch.rand(8))
    finally:
        torch.set_rng_state(state)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (same masks, cheaper where exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def use_exact_dropout(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` inside ``module`` (e.g. RecBole's transformer encoder) by
    :class:`Dropout`: same masks and outputs, no parameter or state changes. Returns ``module``."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
    return module


class HistoryMemory(NamedTuple):
    """A user's history for cross-attention as it is (not folded with the query and output
    projections, :meth:`BeamDecoderLayer.memory_tables`): cheaper when each user decodes one
    query per pass (CRSS order planning), where folding would cost more than it saves."""

    keys: torch.Tensor  # [B, nh, T, dh]
    values: torch.Tensor  # [B, nh, T, dh]
    offset: torch.Tensor  # [B, 1, 1, T] 0 on real positions, -inf on padding


class TokenEmbedding(nn.Module):
    """One embedding row per (codebook, token) pair, plus one pad row per codebook.

    Rows are laid out codebook after codebook: codebook ``r`` owns rows
    ``offsets[r] .. offsets[r] + D_r`` (the last one its pad code ``D_r``).
    """

    def __init__(self, codebook_sizes: Sequence[int], hidden_size: int) -> None:
        super().__init__()
        sizes = torch.tensor(list(codebook_sizes), dtype=torch.long)  # [M]
        offsets = torch.cumsum(sizes + 1, dim=0) - (sizes + 1)  # [M]
        self.n_codebooks = len(codebook_sizes)
        self.max_size = int(sizes.max())
        self.equal_sizes = len(set(codebook_sizes)) == 1  # no padding slot in the [M, D] tables
        self.register_buffer("sizes", sizes, persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)
        token_ids = torch.arange(self.max_size).unsqueeze(0)  # [1, D]
        valid = token_ids < sizes.unsqueeze(1)  # [M, D]
        flat = offsets.unsqueeze(1) + torch.where(valid, token_ids, sizes.unsqueeze(1))  # [M, D]
        self.register_buffer("table_valid", valid, persistent=False)
        self.register_buffer("table_index", flat, persistent=False)
        row_codebook = torch.repeat_interleave(torch.arange(len(codebook_sizes)), sizes + 1)  # [R]
        self.register_buffer("row_codebook", row_codebook, persistent=False)
        self.embedding = nn.Embedding(int((sizes + 1).sum()), hidden_size)

    def rows(self, codebook: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Embedding row of each (codebook, token) pair, any shape ``[...]`` -> ``[...]`` long."""
        return self.offsets[codebook] + token

    def forward(self, codebook: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Embed (codebook, token) pairs of any shape ``[...]`` into ``[..., H]``."""
        return self.embedding(self.rows(codebook, token))

    def item_embeddings(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of an item's M token embeddings: ``codes [N, M]`` -> ``[N, H]`` (pad codes give 0).

        One ``embedding_bag`` (weights 1, 0 on pad codes): no ``[N, M, H]`` tensor is built,
        forward or backward (at 100k items it halves the cost of this table)."""
        real = (codes < self.sizes).to(self.embedding.weight.dtype)  # [N, M]
        return F.embedding_bag(codes + self.offsets, self.embedding.weight, mode="sum", per_sample_weights=real)

    def codebook_tables(self) -> torch.Tensor:
        """Token embeddings of every codebook, padded to ``[M, D, H]`` (pad slots hold the pad row)."""
        return self.embedding(self.table_index)

    def table_padding(self) -> Optional[torch.Tensor]:
        """``[M, D]`` True on the padding slots of smaller codebooks, None when there are none."""
        return None if self.equal_sizes else ~self.table_valid


class BeamDecoderLayer(nn.Module):
    """Pre-LN decoder layer: causal attention from the state stream to the emitted pairs, then
    cross-attention to the history, then a feed-forward block.

    Position ``s`` of the *state stream* ``x`` reads the step embeddings ``e_0..e_s`` (``e_0`` =
    BOS, ``e_j`` = j-th emitted pair); the step embeddings are keys/values only and never mix
    with each other, so the state after a prefix depends on the *set* of emitted pairs, not on
    their order, whatever the number of layers (paths reaching the same set can be merged exactly).

    The memory of a user is projected once (:meth:`memory_kv`) and shared by all of its beams,
    so K never multiplies the cost of the history.
    """

    def __init__(self, hidden_size: int, n_heads: int, inner_size: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = hidden_size // n_heads
        self.attn_dropout = attn_dropout
        self.norm_self = nn.LayerNorm(hidden_size)
        self.norm_steps = nn.LayerNorm(hidden_size)
        self.q_self = nn.Linear(hidden_size, hidden_size)
        self.kv_self = nn.Linear(hidden_size, 2 * hidden_size)
        self.out_self = nn.Linear(hidden_size, hidden_size)
        self.norm_cross = nn.LayerNorm(hidden_size)
        self.q_cross = nn.Linear(hidden_size, hidden_size)
        self.kv_cross = nn.Linear(hidden_size, 2 * hidden_size)
        self.out_cross = nn.Linear(hidden_size, hidden_size)
        self.norm_ff = nn.LayerNorm(hidden_size)
        self.ff = nn.Sequential(
            nn.Linear(hidden_size, inner_size), nn.GELU(), Dropout(dropout), nn.Linear(inner_size, hidden_size)
        )
        self.dropout = Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., S, H]`` -> ``[..., nh, S, dh]``."""
        *lead, s, _ = x.shape
        return x.view(*lead, s, self.n_heads, self.head_dim).transpose(-3, -2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., nh, S, dh]`` -> ``[..., S, H]``."""
        *lead, nh, s, dh = x.shape
        return x.transpose(-3, -2).reshape(*lead, s, nh * dh)

    def memory_kv(self, memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Project the history once: ``memory [B, T, H]`` -> keys, values ``[B, nh, T, dh]``."""
        k, v = self.kv_cross(memory).chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def step_kv(self, steps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of step embeddings: ``[..., H]`` -> ``[..., nh, dh]`` each.

        A step's keys/values depend on its own embedding only (steps never mix), so at inference
        they are computed once per (codebook, token) pair and per user's BOS, not per path and step.
        """
        k, v = self.kv_self(self.norm_steps(steps)).chunk(2, dim=-1)
        shape = (*steps.shape[:-1], self.n_heads, self.head_dim)
        return k.reshape(shape), v.reshape(shape)

    def memory_tables(
        self, mem_kv: Tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The cross-attention of each user folded with its query and output projections, for
        :meth:`forward_last`: a query ``y`` (normed state) scores history position t of head h by
        ``y . (W_q,h^T k_ht) / sqrt(dh) + b_q,h . k_ht / sqrt(dh)`` and reads ``W_o,h v_ht``, so
        per path the cross-attention is two ``[H] x [H, nh * T]`` products instead of two
        ``H x H`` projections around an attention call.

        Args:
            mem_kv: keys, values ``[B, nh, T, dh]`` (:meth:`memory_kv`); mem_mask: ``[B, T]``.

        Returns:
            keys ``[B, H, nh * T]``, score offsets ``[B, 1, nh * T]`` (-inf on padding) and
            projected values ``[B, nh * T, H]``.
        """
        mk, mv = mem_kv
        b, nh, t, dh = mk.shape
        scale = dh ** -0.5
        w_q = self.q_cross.weight.view(nh, dh, -1)  # [nh, dh, H]
        keys = torch.einsum("bhtd,hdi->bhti", mk, w_q).reshape(b, nh * t, -1).transpose(1, 2) * scale
        offset = torch.einsum("bhtd,hd->bht", mk, self.q_cross.bias.view(nh, dh)) * scale  # [B, nh, T]
        offset = offset.masked_fill(~mem_mask.unsqueeze(1), float("-inf")).reshape(b, 1, nh * t)
        values = torch.einsum("bhtd,ohd->bhto", mv, self.out_cross.weight.view(-1, nh, dh)).reshape(b, nh * t, -1)
        return keys, offset, values

    def forward_last(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        pair_kv: Tuple[torch.Tensor, torch.Tensor],
        bos_kv: Tuple[torch.Tensor, torch.Tensor],
        memory: Tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The state after all steps from precomputed step keys/values: equals ``forward(...)``
        at its last position (in training mode, with dropout drawn anew except on the steps).

        Args:
            x: ``[B, K, H]`` query stream, or ``[B, 1, H]`` shared by the K paths (the BOS query
                of the first layer: it is scored once per user against every pair's key).
            rows: ``[B, K, S]`` the emitted pairs, as rows of ``pair_kv``.
            pair_kv: keys, values (:meth:`step_kv`) of R pairs, ``[R, nh, dh]`` shared by every
                user or ``[B, R, nh, dh]`` per user.
            bos_kv: keys, values ``[B, nh, dh]`` of each user's BOS step.
            memory: the users' cross-attention tables (:meth:`memory_tables`) or their
                :class:`HistoryMemory` (same states up to float rounding, same dropout draws).

        Returns:
            ``[B, K, H]``.
        """
        b, k, s = rows.shape
        (pair_k, pair_v), (bos_k, bos_v) = pair_kv, bos_kv
        nh, dh = bos_k.shape[1:]
        p = self.attn_dropout if self.training else 0.0
        shared = pair_k.dim() == 3
        user = torch.arange(b, device=rows.device).view(b, 1, 1)
        index = rows if shared else (user, rows)
        q = self.q_self(self.norm_self(x)).view(b, x.size(1), nh, dh)  # [B, K|1, nh, dh]
        if x.size(1) == 1:  # one query per user: score it against the R pairs, then read S of them
            table = torch.einsum("bhd,rhd->brh" if shared else "bhd,brhd->brh", q[:, 0], pair_k)  # [B, R, nh]
            pair_scores = table[user, rows]  # [B, K, S, nh]
        else:
            pair_scores = (q.unsqueeze(2) * pair_k[index]).sum(-1)  # [B, K, S, nh]
        bos_scores = (q * bos_k.unsqueeze(1)).sum(-1).expand(b, k, nh)  # [B, K, nh]
        scores = torch.cat([bos_scores.unsqueeze(2), pair_scores], dim=2) / dh ** 0.5  # [B, K, S + 1, nh]
        weights = dropout(torch.softmax(scores, dim=2), p, self.training).unsqueeze(-1)
        att = weights[:, :, 0] * bos_v.unsqueeze(1) + (weights[:, :, 1:] * pair_v[index]).sum(2)  # [B, K, nh, dh]
        x = x + self.dropout(self.out_self(att.reshape(b, k, nh * dh)))  # [B, K, H]
        if isinstance(memory, HistoryMemory):
            q = self.q_cross(self.norm_cross(x)).view(b, k, nh, dh)
            scores = torch.einsum("bknd,bntd->bknt", q, memory.keys) * dh ** -0.5 + memory.offset  # [B, K, nh, T]
            weights = dropout(torch.softmax(scores, dim=-1), p, self.training)
            att = torch.einsum("bknt,bntd->bknd", weights, memory.values)  # [B, K, nh, dh]
            x = x + self.dropout(self.out_cross(att.reshape(b, k, nh * dh)))
        else:
            keys, offset, values = memory
            scores = torch.baddbmm(offset, self.norm_cross(x), keys).view(b, k, nh, -1)  # [B, K, nh, T]
            weights = dropout(torch.softmax(scores, dim=-1), p, self.training).view(b, k, -1)
            x = x + self.dropout(torch.baddbmm(self.out_cross.bias, weights, values))  # [B, K, H]
        return x + self.dropout(self.ff(self.norm_ff(x)))

    def forward(
        self, x: torch.Tensor, steps: torch.Tensor, mem_kv: Tuple[torch.Tensor, torch.Tensor], mem_mask: torch.Tensor
    ) -> torch.Tensor:
        """Args:
            x: ``[B, K, S, H]`` state stream (K paths per user, S positions), or ``[B, K, 1, H]``:
                only the state after all S steps (inference; positions never interact).
            steps: ``[B, K, S, H]`` step embeddings (BOS, then the emitted pairs).
            mem_kv: keys and values ``[B, nh, T, dh]`` from :meth:`memory_kv`.
            mem_mask: ``[B, T]`` bool, True where the history position is real.

        Returns:
            ``[B, K, S, H]``.
        """
        b, k, s, h = x.shape
        p = self.attn_dropout if self.training else 0.0
        # causal attention from each state to the pairs emitted so far (as a set); a stream that
        # is one query repeated over the positions (the first layer's BOS) is projected once
        q = self.q_self(self.norm_self(x[:, :, :1])).expand(b, k, s, h) if x.stride(2) == 0 else self.q_self(self.norm_self(x))
        kk, v = self.kv_self(self.norm_steps(steps)).chunk(2, dim=-1)  # [B, K, S, H] each
        causal = x.size(2) > 1  # a single query position is the last one: it reads every step
        att = F.scaled_dot_product_attention(
            self._heads(q), self._heads(kk), self._heads(v), dropout_p=p, is_causal=causal
        )  # [B, K, nh, S, dh]
        x = x + self.dropout(self.out_self(self._merge(att)))
        # cross-attention: all K*S queries of a user share that user's memory
        q = self._heads(self.q_cross(self.norm_cross(x)).reshape(b, k * s, h))  # [B, nh, K*S, dh]
        mk, mv = mem_kv
        att = F.scaled_dot_product_attention(q, mk, mv, attn_mask=mem_mask[:, None, None, :], dropout_p=p)
        x = x + self.dropout(self.out_cross(self._merge(att).reshape(b, k, s, h)))
        return x + self.dropout(self.ff(self.norm_ff(x)))


class TokenDecoder(nn.Module):
    """Stack of :class:`BeamDecoderLayer` with a final LayerNorm.

    Every position of the state stream starts from the same query (BOS + user state); position
    ``s`` then reads the first ``s`` emitted pairs. There is no step-position embedding, so the
    output depends only on the *set* of emitted (codebook, token) pairs.
    """

    def __init__(
        self, n_layers: int, hidden_size: int, n_heads: int, inner_size: int, dropout: float, attn_dropout: float
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            BeamDecoderLayer(hidden_size, n_heads, inner_size, dropout, attn_dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def memory_kv(self, memory: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer keys/values of ``memory [B, T, H]``."""
        return [layer.memory_kv(memory) for layer in self.layers]

    def forward(
        self,
        steps: torch.Tensor,
        mem_kv: List[Tuple[torch.Tensor, torch.Tensor]],
        mem_mask: torch.Tensor,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``steps [B, K, S, H]`` (position 0 = BOS query) -> states ``[B, K, S, H]``
        (``[B, K, 1, H]``, the state after every step, with ``last_only``)."""
        x = steps[:, :, :1] if last_only else steps[:, :, :1].expand_as(steps)
        for layer, kv in zip(self.layers, mem_kv):
            x = layer(x, steps, kv, mem_mask)
        return self.norm(x)

    def step_tables(
        self,
        pairs: torch.Tensor,
        bos: torch.Tensor,
        mem_kv: List[Tuple[torch.Tensor, torch.Tensor]],
        mem_mask: torch.Tensor,
        reuse: Optional["StepTables"] = None,
        fold_memory: bool = True,
    ) -> "StepTables":
        """Per-layer step keys/values of R step embeddings ``pairs`` (``[R, H]`` shared by every
        user, e.g. every (codebook, token) pair, or ``[B, R, H]`` per user) and of each user's
        BOS step ``bos [B, H]`` (dropout, if any, already applied to both), and the users'
        cross-attention tables of their history (``mem_kv``, ``mem_mask`` as in :meth:`forward`),
        taken from ``reuse`` (tables of the same users and weights) when given; with
        ``fold_memory=False`` the history is kept as it is (:class:`HistoryMemory`, for one query
        per user and pass)."""
        if reuse is not None:
            memory = reuse.memory
        elif not fold_memory:
            offset = torch.zeros(mem_mask.shape, dtype=bos.dtype, device=bos.device).masked_fill(~mem_mask, float("-inf"))
            memory = [HistoryMemory(k, v, offset[:, None, None, :]) for k, v in mem_kv]
        else:
            memory = [layer.memory_tables(kv, mem_mask) for layer, kv in zip(self.layers, mem_kv)]
        return StepTables(bos, [layer.step_kv(pairs) + layer.step_kv(bos) for layer in self.layers], memory)

    def forward_last(self, tables: "StepTables", rows: torch.Tensor) -> torch.Tensor:
        """State after every path's steps, the steps given as pair rows ``rows [B, K, S]`` of
        ``tables`` -> ``[B, K, H]``. Equals ``forward(..., last_only=True)`` in eval mode at a
        fraction of its cost: no step is projected again, the first layer's query is per user.
        (In training mode the steps keep the dropout drawn once in ``tables``.)"""
        x = tables.bos.unsqueeze(1)  # [B, 1, H]: every path starts from its user's BOS query
        for layer, (pair_k, pair_v, bos_k, bos_v), memory in zip(self.layers, tables.kv, tables.memory):
            x = layer.forward_last(x, rows, (pair_k, pair_v), (bos_k, bos_v), memory)
        return self.norm(x.expand(*rows.shape[:2], -1))


@dataclass
class StepTables:
    """Step keys/values and cross-attention tables of the decoder for B users, shared by all
    their paths and steps."""

    bos: torch.Tensor  # [B, H] the BOS step (BOS + user state), also the first query
    kv: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]  # per layer: pair keys,
    # pair values [R, nh, dh] or [B, R, nh, dh] (see TokenDecoder.step_tables), BOS keys, values [B, nh, dh]
    memory: List[Union[Tuple[torch.Tensor, torch.Tensor, torch.Tensor], HistoryMemory]]  # per layer:
    # BeamDecoderLayer.memory_tables, or the HistoryMemory


class FusedHeads(NamedTuple):
    """The M codebook heads fused into one linear map (:meth:`CodebookHeads.fused`)."""

    weight: torch.Tensor  # [M * D, H]
    bias: torch.Tensor  # [M * D]
    pad: Optional[torch.Tensor]  # [M, D] True on padding slots of smaller codebooks (None: none)
    n_codebooks: int  # M

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """``h [..., H]`` -> logits of every codebook ``[..., M, D]``, -inf on padding slots."""
        logits = F.linear(h, self.weight, self.bias).view(*h.shape[:-1], self.n_codebooks, -1)
        return logits if self.pad is None else logits.masked_fill(self.pad, float("-inf"))

    def remaining_log_probs(self, h: torch.Tensor, emitted: torch.Tensor) -> torch.Tensor:
        """Log-probs ``[..., M, D]`` of the codebooks not yet ``emitted`` (``[..., M]`` bool) from
        the states ``h [..., H]``, -inf on the emitted ones: one head per codebook, applied only to
        the states still missing it (cheaper than :meth:`logits` once most codebooks are emitted)."""
        m, hidden = self.n_codebooks, h.size(-1)
        d = self.bias.numel() // m
        flat, missing = h.reshape(-1, hidden), ~emitted.reshape(-1, m)
        out = flat.new_full((flat.size(0) * m, d), float("-inf"))  # row (state, codebook)
        weight, bias = self.weight.view(m, d, hidden), self.bias.view(m, d)
        for r in range(m):
            rows = missing[:, r].nonzero().squeeze(1)
            if rows.numel():
                logits = F.linear(flat.index_select(0, rows), weight[r], bias[r])  # [n, D]
                if self.pad is not None:
                    logits = logits.masked_fill(self.pad[r], float("-inf"))
                out.index_copy_(0, rows * m + r, torch.log_softmax(logits, dim=-1))
        return out.view(*h.shape[:-1], m, d)


class CodebookHeads(nn.Module):
    """M output heads: logits of codebook ``r`` = ``W_r h`` dot that codebook's token embeddings / tau."""

    def __init__(self, n_codebooks: int, hidden_size: int, temperature: float) -> None:
        super().__init__()
        self.n_codebooks = n_codebooks
        self.temperature = temperature
        self.proj = nn.Linear(hidden_size, n_codebooks * hidden_size)

    def forward(self, h: torch.Tensor, tables: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Args:
            h: ``[..., H]`` decoder states.
            tables: ``[M, D, H]`` token embeddings (:meth:`TokenEmbedding.codebook_tables`).
            valid: ``[M, D]`` bool, False on padding slots of smaller codebooks.

        Returns:
            ``[..., M, D]`` logits, ``-inf`` on padding slots.
        """
        return self.fused(tables, ~valid).logits(h)

    def fused(self, tables: torch.Tensor, pad: Optional[torch.Tensor]) -> "FusedHeads":
        """The heads as one linear map ``H -> M * D``: ``(W_r h + b_r) . e_rd / tau`` =
        ``h . (W_r^T e_rd) / tau + b_r . e_rd / tau``; one matmul per state instead of a projection
        to ``M x H`` and M table products. Build it once per batch where many states are scored;
        ``pad [M, D]`` marks padding slots (:meth:`TokenEmbedding.table_padding`; None: none)."""
        m, d, hidden = tables.shape
        weight = self.proj.weight.view(m, hidden, hidden)  # [M, H_out, H_in]
        bias = self.proj.bias.view(m, hidden)
        fused_w = torch.bmm(tables, weight).reshape(m * d, hidden) / self.temperature  # [M * D, H_in]
        fused_b = torch.bmm(tables, bias.unsqueeze(-1)).reshape(m * d) / self.temperature
        return FusedHeads(fused_w, fused_b, pad, m)

    def one_codebook(
        self, h: torch.Tensor, codebook: torch.Tensor, tables: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Logits of one given codebook per state, ``h [..., H]``, ``codebook [...]`` -> ``[..., D]``.

        Equals ``forward(h, ...)`` read at ``codebook``, at 1/M of its cost: rescoring sampled
        paths needs only the emitted codebook's distribution at each step.
        """
        hidden = h.size(-1)
        flat_h, flat_cb = h.reshape(-1, hidden), codebook.reshape(-1)
        weight = self.proj.weight.view(self.n_codebooks, hidden, hidden)
        bias = self.proj.bias.view(self.n_codebooks, hidden)
        logits = flat_h.new_zeros(flat_h.size(0), tables.size(1))
        for r in range(self.n_codebooks):
            rows = (flat_cb == r).nonzero().squeeze(1)
            if rows.numel():
                q = F.linear(flat_h[rows], weight[r], bias[r])  # [n, H]
                chunk = q @ tables[r].t() / self.temperature  # [n, D]; half precision under autocast
                logits = logits.index_copy(0, rows, chunk.to(logits.dtype))
        logits = logits.masked_fill(~valid[flat_cb], float("-inf"))
        return logits.view(*codebook.shape, -1)
