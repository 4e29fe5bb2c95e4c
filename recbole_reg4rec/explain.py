"""Explanations of REG4Rec recommendations: the reasoning path behind each recommended item.

From a saved checkpoint, :func:`explain_users` returns for each requested user the top-K items
with the path that reached them — codebook order, token per step, step confidence (CRSS),
token log-probability, reflection score — the number of candidates CORP pruned or merged, and
a human-readable description of every token, derived from the items that share it (their
dominant ``token`` / ``token_seq`` side-information values, e.g. genres and title words on
ml-100k).

CLI: ``python explain.py --model_file saved/REG4Rec-....pth --users 1 42 --topk 5 [--json]``
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from recbole.utils import FeatureType

STOPWORDS = {
    "the", "a", "an", "of", "and", "in", "to", "on", "for", "with", "at", "from", "by", "is", "it", "la", "le",
    "de", "les", "der", "die", "das", "el", "&", "-", "ii", "2", "i", "you", "my", "me", "what", "this",
}


@dataclass
class Step:
    """One reasoning step of a path."""

    codebook: int
    token: int
    description: str
    confidence: float  # CRSS confidence of the chosen codebook at this step
    log_prob: float  # log p(token | path so far)
    reflection: float  # p(path up to this step is consistent), reflection head


@dataclass
class ItemExplanation:
    rank: int
    item: str  # external item id
    label: str  # e.g. the title, when the dataset has one
    score: float  # full_sort_predict score
    reached_by_beam: bool
    # the whole item judged before any reasoning step (the composed head's log-probability, or the sum of its
    # tokens' first-step log-probabilities); the score holds first_step_weight times it
    first_step_score: float = float("nan")
    path: List[Step] = field(default_factory=list)
    completion: List[Dict] = field(default_factory=list)  # tokens of codebooks not emitted (L < M)


@dataclass
class UserExplanation:
    user: str
    history: List[str]
    pruned_by_catalogue: int
    pruned_by_reflection: int
    merged_paths: int
    items: List[ItemExplanation]
    first_step_weight: float = 0.0  # u of the scores (inference setting)
    # what the first-step score is: the composed item head's view, or the start state's (no composed head)
    first_step_source: str = "the start state's view of it"


class TokenDescriber:
    """Describes token ``t`` of codebook ``r`` by the side information of the items holding it."""

    def __init__(self, dataset, codes: torch.Tensor, fields: Optional[Sequence[str]] = None, top: int = 3) -> None:
        self.codes = codes.cpu()
        self.top = top
        self.item_feat = dataset.item_feat
        self.dataset = dataset
        iid = dataset.iid_field
        if fields is None:
            fields = [
                f for f in (self.item_feat.columns if self.item_feat is not None else [])
                if f != iid and dataset.field2type.get(f) in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)
            ]
        self.fields = list(fields)
        self.label_field = next((f for f in self.fields if "title" in f or "name" in f), None)
        self._catalogue_freq = {f: self._values(f, torch.arange(1, self.codes.size(0))) for f in self.fields}
        self._cache: Dict = {}

    def _values(self, fld: str, items: torch.Tensor) -> Counter:
        """Counter of the (decoded) values of ``fld`` over ``items``, one count per item."""
        col = self.item_feat[fld][items]
        if col.dim() == 1:
            col = col.unsqueeze(1)
        counts: Counter = Counter()
        for row in col.tolist():
            words = {self.dataset.id2token(fld, v) for v in row if v != 0}
            counts.update(w for w in words if str(w).lower() not in STOPWORDS and not str(w).startswith("("))
        return counts

    def label(self, item: int) -> str:
        if self.label_field is None:
            return ""
        row = self.item_feat[self.label_field][item]
        row = row.tolist() if row.dim() else [int(row)]
        return " ".join(str(self.dataset.id2token(self.label_field, v)) for v in row if v != 0)

    def describe(self, codebook: int, token: int) -> str:
        key = (codebook, token)
        if key in self._cache:
            return self._cache[key]
        items = (self.codes[:, codebook] == token).nonzero().squeeze(1)
        items = items[items > 0]
        parts = [f"{len(items)} items"]
        n_all = self.codes.size(0) - 1
        for fld in self.fields:
            counts = self._values(fld, items)
            base = self._catalogue_freq[fld]
            # rank values by share in the group times how much more common they are than overall
            scored = []
            for value, c in counts.items():
                share = c / max(len(items), 1)
                lift = share / max(base[value] / n_all, 1e-9)
                scored.append((share * math.log1p(lift), value, share))
            scored.sort(reverse=True)
            if scored:
                parts.append(f"{fld}: " + ", ".join(f"{v} {s:.0%}" for _, v, s in scored[: self.top]))
        if self.label_field is not None and len(items):
            parts.append("e.g. " + "; ".join(self.label(int(i)) for i in items[:2]))
        self._cache[key] = " | ".join(parts)
        return self._cache[key]


@torch.no_grad()
def explain_interaction(model, interaction, dataset, topk: int = 10, describer: Optional[TokenDescriber] = None):
    """Explanations for the users of an evaluation ``interaction`` (one row per user)."""
    describer = describer or TokenDescriber(dataset, model.codes)
    model.eval()
    ctx = model.encode(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
    result, prior, fallback = model.beam_search(ctx)
    scores = model.full_sort_predict(interaction)  # [B, N]
    scores[:, 0] = float("-inf")
    top_scores, top_items = scores.topk(topk, dim=1)
    index = model.catalogue()
    uid = dataset.uid_field
    out: List[UserExplanation] = []
    for u in range(scores.size(0)):
        live = torch.isfinite(result.path_scores[u])
        items = []
        for rank, (item, score) in enumerate(zip(top_items[u].tolist(), top_scores[u].tolist()), start=1):
            reached = bool(torch.isfinite(result.item_scores[u, item]))
            entry = ItemExplanation(rank, str(dataset.id2token(dataset.iid_field, item)), describer.label(item), score, reached,
                                    float(fallback[u, item]))
            # the best live path this item is consistent with
            best, best_score = None, float("-inf")
            for k in live.nonzero().squeeze(1).tolist():
                cbs, toks = result.codebooks[u, k].tolist(), result.tokens[u, k].tolist()
                if not index.contradicts(item, cbs, toks) and result.path_scores[u, k] > best_score:
                    best, best_score = k, float(result.path_scores[u, k])
            if best is not None:
                for s, (r, t) in enumerate(zip(result.codebooks[u, best].tolist(), result.tokens[u, best].tolist())):
                    entry.path.append(Step(
                        r, t, describer.describe(r, t),
                        float(result.step_confidence[u, best, s]), float(result.step_logp[u, best, s]),
                        float(result.step_reflection[u, best, s]),
                    ))
                emitted = set(result.codebooks[u, best].tolist())
                for r in range(model.n_codebooks):
                    if r not in emitted:
                        t = int(model.codes[item, r])
                        entry.completion.append({"codebook": r, "token": t, "description": describer.describe(r, t)})
            items.append(entry)
        hist = interaction[model.ITEM_SEQ][u, : int(interaction[model.ITEM_SEQ_LEN][u])].tolist()
        out.append(UserExplanation(
            user=str(dataset.id2token(uid, int(interaction[uid][u]))) if uid in interaction.columns else str(u),
            history=[str(dataset.id2token(dataset.iid_field, i)) for i in hist],
            pruned_by_catalogue=int(result.pruned_catalogue[u]),
            pruned_by_reflection=int(result.pruned_reflection[u]),
            merged_paths=int(result.merged[u]),
            items=items,
            first_step_weight=float(model.first_step_weight),
            first_step_source=("the composed item head's log-probability" if getattr(model, "composed_head_enabled", False)
                               else "the start state's view of it"),
        ))
    return out


def explain_users(
    model_file: str, users: Sequence[str], topk: int = 10, split: str = "test", trusted: bool = False,
    overrides: Optional[Dict] = None,
) -> List[UserExplanation]:
    """Top-K items with their reasoning paths for ``users`` (external ids) of a saved checkpoint.

    Args:
        model_file: a REG4Rec checkpoint (``saved/REG4Rec-*.pth``).
        users: external user ids (as in the ``.inter`` file).
        topk: items per user.
        split: ``test`` (history up to the validation item) or ``valid``.
        trusted, overrides: see :func:`recbole_reg4rec.quick_start.load_data_and_model`.
    """
    from .quick_start import load_data_and_model

    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(
        model_file, trusted=trusted, overrides=overrides)
    if not hasattr(model, "beam_search"):
        raise ValueError(f"{config['model']} has no reasoning paths to explain (REG4Rec models only)")
    data = test_data if split == "test" else valid_data
    eval_ds = data.dataset
    uid = eval_ds.uid_field
    try:
        internal = torch.tensor([int(eval_ds.token2id(uid, str(u))) for u in users])
    except ValueError as err:
        raise ValueError(f"unknown user id: {err}") from None
    rows = (eval_ds.inter_feat[uid].unsqueeze(0) == internal.unsqueeze(1)).nonzero()
    missing = set(internal.tolist()) - set(eval_ds.inter_feat[uid][rows[:, 1]].tolist())
    if missing:
        raise ValueError(f"users without a {split} interaction: {[eval_ds.id2token(uid, m) for m in missing]}")
    interaction = eval_ds[rows[:, 1]].to(model.codes.device)
    return explain_interaction(model, interaction, dataset, topk=topk, describer=TokenDescriber(dataset, model.codes))


def format_explanations(explanations: Sequence[UserExplanation]) -> str:
    """Human-readable text of :func:`explain_users`' result."""
    lines: List[str] = []
    for ex in explanations:
        lines.append(f"user {ex.user}: history {' '.join(ex.history[-10:])}")
        if ex.first_step_weight:
            lines.append(f"  scores add {ex.first_step_weight:g} x the item's first-step score ({ex.first_step_source})")
        lines.append(
            f"  CORP pruned {ex.pruned_by_catalogue} inconsistent candidates, {ex.pruned_by_reflection} paths by"
            f" reflection, merged {ex.merged_paths} equal token sets"
        )
        for it in ex.items:
            lines.append(f"  #{it.rank} item {it.item} {it.label!s} score {it.score:.3f} first-step {it.first_step_score:.2f}"
                         + ("" if it.reached_by_beam else " (fallback, not reached by the beam)"))
            for s, st in enumerate(it.path, start=1):
                lines.append(
                    f"     step {s}: codebook {st.codebook} token {st.token} conf {st.confidence:.2f}"
                    f" logp {st.log_prob:.2f} reflect {st.reflection:.2f} :: {st.description}"
                )
            for c in it.completion:
                lines.append(f"     completion: codebook {c['codebook']} token {c['token']} :: {c['description']}")
    return "\n".join(lines)


def to_dicts(explanations: Sequence[UserExplanation]) -> List[Dict]:
    return [asdict(e) for e in explanations]


def explain_command(args) -> int:
    """``reg4rec.py explain``. Exit status: 0 done, 2 bad input (one line on stderr)."""
    import json
    import sys

    quiet = None if args.verbose else {"state": "WARNING"}  # no config dump unless asked
    try:
        explanations = explain_users(args.model_file, args.users, topk=args.topk, split=args.split, overrides=quiet)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(to_dicts(explanations), indent=1) if args.json else format_explanations(explanations))
    return 0
