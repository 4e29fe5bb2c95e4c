"""MPQ: MoE-based parallel quantization (REG4Rec, docs/design.md §2 "MPQ").

M expert encoders map an item's feature vector v to M latents e^r; each latent is quantized
against its own codebook of D codewords, giving M tokens with no order among them. A softmax
gate h(v) mixes the chosen codewords into q = sum_r h_r(v) * z_{r, c^r} (straight-through), and a
decoder reconstructs v from q. Loss:

    ||v - D(q)||^2  +  ||sg(e) - z||^2  +  beta * ||e - sg(z)||^2  +  lambda_orth * mean_{r != s} cos^2(e^r, e^s)

Codebooks start from k-means on the initial expert latents; codewords left unused for an epoch
are moved onto latents of random items (dead-code restart).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.cluster import KMeans
from tqdm import tqdm

from .diagnostics import collision_stats
from .settings import TokenizerSettings
from .threads import single_threaded


class ParallelExperts(nn.Module):
    """M independent two-layer MLPs evaluated in one batched einsum.

    ``[B, in_dim]`` -> ``[B, M, out_dim]``.
    """

    def __init__(self, n_experts: int, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(n_experts, in_dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w2 = nn.Parameter(torch.empty(n_experts, hidden, out_dim))
        self.b2 = nn.Parameter(torch.zeros(n_experts, out_dim))
        for w in (self.w1, self.w2):  # each expert gets PyTorch's default Linear init
            for r in range(n_experts):
                nn.init.kaiming_uniform_(w.data[r].T, a=5**0.5)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = F.gelu(torch.einsum("bi,mih->bmh", v, self.w1) + self.b1)  # [B, M, hidden]
        return torch.einsum("bmh,mho->bmo", h, self.w2) + self.b2  # [B, M, out_dim]


class MPQ(nn.Module):
    """The MPQ tokenizer network.

    Args:
        in_dim: size of the item feature vectors.
        n_codebooks: M.
        codebook_size: D.
        latent_dim: size of expert latents and codewords.
        hidden: hidden size of expert and decoder MLPs.
    """

    def __init__(self, in_dim: int, n_codebooks: int, codebook_size: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.experts = ParallelExperts(n_codebooks, in_dim, hidden, latent_dim)
        self.codebooks = nn.Parameter(torch.randn(n_codebooks, codebook_size, latent_dim) * 0.1)  # [M, D, H]
        self.gate = nn.Linear(in_dim, n_codebooks)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, in_dim))

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """``v [B, in_dim]`` -> expert latents ``[B, M, H]``."""
        return self.experts(v)

    def assign(self, latents: torch.Tensor) -> torch.Tensor:
        """Nearest codeword per codebook: ``[B, M, H]`` -> codes ``[B, M]``."""
        # ||e - z||^2 = ||e||^2 - 2 e.z + ||z||^2; ||e||^2 does not change the argmin.
        dist = -2 * torch.einsum("bmh,mdh->bmd", latents, self.codebooks) + self.codebooks.pow(2).sum(-1)
        return dist.argmin(-1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes ``[B, M]`` -> codewords ``[B, M, H]``."""
        m = torch.arange(codes.size(1), device=codes.device)
        return self.codebooks[m, codes]

    def forward(self, v: torch.Tensor, beta: float, orth_weight: float) -> Dict[str, torch.Tensor]:
        latents = self.encode(v)  # [B, M, H]
        codes = self.assign(latents.detach())  # [B, M]
        chosen = self.lookup(codes)  # [B, M, H]
        straight = latents + (chosen - latents).detach()  # gradients flow to the experts
        gate = torch.softmax(self.gate(v), dim=-1)  # [B, M]
        q = (gate.unsqueeze(-1) * straight).sum(1)  # [B, H]
        recon = F.mse_loss(self.decoder(q), v)
        codebook = F.mse_loss(chosen, latents.detach())
        commit = F.mse_loss(latents, chosen.detach())
        orth = latent_orthogonality(latents)
        loss = recon + codebook + beta * commit + orth_weight * orth
        return {"loss": loss, "recon": recon, "codebook": codebook, "commit": commit, "orth": orth, "codes": codes}


def latent_orthogonality(latents: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine between the M latents of the same item, over distinct pairs.

    ``[B, M, H]`` -> scalar (0 when M = 1).
    """
    m = latents.size(1)
    if m < 2:
        return latents.new_zeros(())
    unit = F.normalize(latents, dim=-1)
    cos = unit @ unit.transpose(1, 2)  # [B, M, M]
    off_diag = ~torch.eye(m, dtype=torch.bool, device=latents.device)
    return cos[:, off_diag].pow(2).mean()


@dataclass
class MPQResult:
    """Output of :func:`train_mpq` for the real items (padding excluded).

    Attributes:
        codes: ``[N, M]`` long.
        latents: ``[N, M, H]`` expert latents after training.
        recon_error: relative reconstruction error ``||v - D(q)||^2 / ||v||^2`` (v standardized).
        history: per-epoch mean of each loss term.
        unique_before_resolution: share of items with a unique token set before collisions were
            resolved (``nan`` when resolution is off).
        n_reassigned: items that had one token changed to make their set unique.
    """

    codes: torch.Tensor
    latents: torch.Tensor
    recon_error: float
    history: List[Dict[str, float]] = field(default_factory=list)
    unique_before_resolution: float = float("nan")
    n_reassigned: int = 0


def train_mpq(
    features: torch.Tensor,
    settings: TokenizerSettings,
    show_progress: bool = True,
    on_epoch: Optional[Callable[[int, Dict[str, float]], None]] = None,
    logger: Optional[logging.Logger] = None,
) -> MPQResult:
    """Train MPQ on ``features [N, d]`` (real items only) and return their tokens.

    Deterministic for a given ``settings.tokenizer_seed``; the caller's global RNG state is
    left as it was.
    """
    logger = logger or logging.getLogger(__name__)
    seed = int(settings.tokenizer_seed)
    v = _standardize(features.float())  # [N, d]
    n = v.size(0)
    m, d = settings.n_codebooks, settings.codebook_size
    with torch.random.fork_rng(devices=[]), single_threaded():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = MPQ(v.size(1), m, d, settings.mpq_latent_dim, settings.mpq_expert_hidden)
        if settings.mpq_kmeans_init:
            _kmeans_init(model, v, seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.mpq_lr)
        history: List[Dict[str, float]] = []
        n_epochs = capped_epochs(settings, n)
        if n_epochs < settings.mpq_epochs:
            logger.info(f"MPQ: {n_epochs} of mpq_epochs={settings.mpq_epochs} epochs fit mpq_max_steps={settings.mpq_max_steps}")
        epochs = tqdm(range(n_epochs), desc="MPQ", disable=not show_progress, leave=False)
        for epoch in epochs:
            usage = torch.zeros(m, d)
            sums: Dict[str, float] = {}
            perm = torch.randperm(n, generator=gen)
            n_batches = 0
            for start in range(0, n, settings.mpq_batch_size):
                out = model(v[perm[start : start + settings.mpq_batch_size]], settings.mpq_beta, settings.mpq_orth_weight)
                optimizer.zero_grad()
                out["loss"].backward()
                optimizer.step()
                usage.scatter_add_(1, out["codes"].T, torch.ones_like(out["codes"].T, dtype=usage.dtype))
                for k in ("loss", "recon", "codebook", "commit", "orth"):
                    sums[k] = sums.get(k, 0.0) + float(out[k].detach())
                n_batches += 1
            stats = {k: s / n_batches for k, s in sums.items()}
            if settings.mpq_dead_code_restart:
                stats["restarted"] = float(_restart_dead_codes(model, v, usage, gen))
            history.append(stats)
            epochs.set_postfix(loss=f"{stats['loss']:.4f}", recon=f"{stats['recon']:.4f}")
            if on_epoch is not None:
                on_epoch(epoch, stats)
        with torch.no_grad():
            latents = model.encode(v)
            codes = model.assign(latents)
            result = MPQResult(codes, latents, float("nan"), history)
            if settings.mpq_resolve_collisions:
                result.unique_before_resolution = collision_stats(codes)[0]
                result.codes, result.n_reassigned = resolve_collisions(latents, model.codebooks, codes)
            gate = torch.softmax(model.gate(v), dim=-1)
            q = (gate.unsqueeze(-1) * model.lookup(result.codes)).sum(1)
            result.recon_error = float((model.decoder(q) - v).pow(2).sum() / v.pow(2).sum())
    return result


def capped_epochs(settings: TokenizerSettings, n_items: int) -> int:
    """``mpq_epochs``, cut so that the optimizer steps stay within ``mpq_max_steps`` (at least one
    epoch): training time is bounded on large catalogues, unchanged on small ones."""
    if settings.mpq_max_steps <= 0 or settings.mpq_epochs == 0:
        return settings.mpq_epochs
    per_epoch = math.ceil(n_items / settings.mpq_batch_size)
    return max(1, min(settings.mpq_epochs, settings.mpq_max_steps // per_epoch))


@torch.no_grad()
def resolve_collisions(latents: torch.Tensor, codebooks: torch.Tensor, codes: torch.Tensor):
    """Make token sets unique by moving items off shared sets at the least extra distortion.

    In every group of items sharing a full token set, the item closest to its codewords keeps
    the set; each other item (in item order) swaps one token for the cheapest alternative
    ``(codebook r, codeword j)``, cost ``||e^r - z_{r,j}||^2 - ||e^r - z_{r,c^r}||^2``, that gives a
    set no item holds yet. Unordered tokens have no spare de-duplication slot, so this is how MPQ
    keeps items apart; it touches only colliding items. One token gives ``M * (D - 1)``
    alternatives; an item of a larger group that finds them all taken changes two tokens, then
    three ... (:func:`_multi_token_alternatives`, cheapest first), so groups of any size split.

    Args:
        latents: ``[N, M, H]``; codebooks: ``[M, D, H]``; codes: ``[N, M]``.
    Returns:
        (new codes ``[N, M]``, number of items re-assigned).
    """
    codes = codes.clone()
    taken = {tuple(row) for row in codes.tolist()}
    _, group, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    colliding = torch.nonzero(counts[group] > 1).flatten()  # only these items can move
    if colliding.numel() == 0:
        return codes, 0
    e = latents[colliding]  # [C, M, H]
    dist = (
        e.pow(2).sum(-1, keepdim=True)
        - 2 * torch.einsum("cmh,mdh->cmd", e, codebooks)
        + codebooks.pow(2).sum(-1).unsqueeze(0)
    )  # [C, M, D] squared distances
    own = dist.gather(2, codes[colliding].unsqueeze(2))  # [C, M, 1]
    extra = dict(zip(colliding.tolist(), (dist - own).flatten(1)))  # item -> [M * D] extra cost
    quant_error = dict(zip(colliding.tolist(), own.squeeze(2).sum(1).tolist()))
    n_moved = 0
    m, d = codebooks.size(0), codebooks.size(1)
    # members of every colliding group in item order, from one sort instead of a scan per group
    order = torch.argsort(group[colliding], stable=True)
    sorted_items = colliding[order].tolist()
    sizes = torch.unique_consecutive(group[colliding][order], return_counts=True)[1].tolist()
    start = 0
    for size in sizes:
        members = sorted_items[start:start + size]
        start += size
        keeper = min(members, key=lambda i: quant_error[i])
        for i in members:
            if i == keeper:
                continue
            row = codes[i].tolist()
            moved = False
            for flat in torch.argsort(extra[i], stable=True).tolist():
                r, j = divmod(flat, d)
                if j == row[r]:
                    continue
                candidate = tuple(row[:r] + [j] + row[r + 1 :])
                if candidate not in taken:
                    taken.add(candidate)
                    codes[i, r] = j
                    n_moved += 1
                    moved = True
                    break
            for changed in range(2, m + 1):  # every one-token alternative is taken
                if moved:
                    break
                for candidate in _multi_token_alternatives(extra[i].view(m, d), row, changed):
                    if candidate not in taken:
                        taken.add(candidate)
                        codes[i] = torch.tensor(candidate, dtype=codes.dtype)
                        n_moved += 1
                        moved = True
                        break
    return codes, n_moved


def _multi_token_alternatives(extra: torch.Tensor, row: List[int], changed: int, budget: int = 50_000):
    """Token sets that change exactly ``changed`` tokens of ``row``, cheapest first.

    Args:
        extra: ``[M, D]`` extra distortion of each (codebook, codeword) for this item.
        row: the item's tokens; changed: how many of them to change.
        budget: about how many candidates to rank; each codebook contributes its cheapest
            ``T`` alternatives with ``C(M, changed) * T ** changed <= budget``.
    """
    m, d = extra.shape
    combos = list(itertools.combinations(range(m), changed))
    per = max(1, min(d - 1, int((budget / len(combos)) ** (1.0 / changed))))
    cost = extra.scatter(1, torch.tensor(row).unsqueeze(1), float("inf"))  # the own token is no alternative
    top_cost, top_tok = cost.topk(per, dim=1, largest=False)  # [M, T]
    mesh = torch.cartesian_prod(*[torch.arange(per)] * changed).view(-1, changed)  # [T^k, k]
    costs, rows = [], []
    for combo in combos:
        costs.append(sum(top_cost[r, mesh[:, s]] for s, r in enumerate(combo)))
        block = torch.tensor(row).repeat(mesh.size(0), 1)
        for s, r in enumerate(combo):
            block[:, r] = top_tok[r, mesh[:, s]]
        rows.append(block)
    costs, rows = torch.cat(costs), torch.cat(rows)  # [C], [C, M]
    order = torch.argsort(costs, stable=True)
    order = order[torch.isfinite(costs[order])]
    for start in range(0, order.numel(), 256):  # materialise cheapest first, a slice at a time
        yield from map(tuple, rows[order[start:start + 256]].tolist())


def _standardize(v: torch.Tensor) -> torch.Tensor:
    """Centre, and scale to unit mean squared entry, so loss weights mean the same on any dataset."""
    v = v - v.mean(0, keepdim=True)
    scale = v.pow(2).mean().sqrt()
    return v / scale if scale > 0 else v


KMEANS_MAX_ITEMS = 20_000  # k-means initialisation reads at most this many items (bounded time)


@torch.no_grad()
def _kmeans_init(model: MPQ, v: torch.Tensor, seed: int) -> None:
    if v.size(0) > KMEANS_MAX_ITEMS:  # a fixed random sample: enough points for D centroids
        v = v[torch.randperm(v.size(0), generator=torch.Generator().manual_seed(seed))[:KMEANS_MAX_ITEMS]]
    latents = model.encode(v)  # [N, M, H]
    for r in range(latents.size(1)):
        km = KMeans(n_clusters=model.codebooks.size(1), n_init=1, random_state=seed + r)
        km.fit(latents[:, r].numpy().astype(np.float64))
        model.codebooks.data[r] = torch.from_numpy(km.cluster_centers_).float()


@torch.no_grad()
def _restart_dead_codes(model: MPQ, v: torch.Tensor, usage: torch.Tensor, gen: torch.Generator) -> int:
    """Move codewords unused this epoch onto the latents of random items; returns how many moved."""
    dead = usage == 0  # [M, D]
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    latents = model.encode(v)  # [N, M, H]
    for r in torch.nonzero(dead.any(1)).flatten().tolist():
        idx = torch.nonzero(dead[r]).flatten()
        pick = torch.randint(0, v.size(0), (idx.numel(),), generator=gen)
        noise = 0.01 * torch.randn(idx.numel(), latents.size(-1), generator=gen)
        model.codebooks.data[r, idx] = latents[pick, r] + noise
    return n_dead
