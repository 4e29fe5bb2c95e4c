r"""REG4Rec: reasoning-enhanced generative sequential recommender (first stage).

Reference: Xing et al., "REG4Rec: Reasoning-Enhanced Generative Model for Large-Scale
Recommendation Systems", arXiv 2508.15308. The formulation (our reading) is in docs/design.md §2.

Every item is written as M semantic tokens (one per codebook, :class:`SemanticIDs`). The model

* encodes the history with a transformer (item = sum of its token embeddings, + optional item-ID
  embedding, + position);
* decodes tokens one (codebook, token) pair at a time; the step input is the pair emitted before
  (token embedding + codebook-id embedding, no step position, so the order is free); the decoder
  state after a prefix depends on the set of emitted pairs only (:class:`.layers.TokenDecoder`);
  after every step it gives a distribution for every codebook not yet emitted (M heads, tau);
* chooses the codebook order by confidence (CRSS), checks its paths with a reflection head and
  the catalogue (CORP beam search, :mod:`.beam_search`);
* optionally (``item_fusion_weight`` not 0) keeps an item-level ID-softmax head whose
  log-probability can be added to the item scores.

How items are ranked at inference is set by a few *inference settings* (:data:`INFERENCE_KEYS`),
changed only through :meth:`REG4Rec.configure_inference`; those set to ``auto`` in the config
are chosen on the validation split at the end of training (:mod:`recbole_reg4rec.trainer.inference_selection`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType
from torch import nn

from ..tokenizer.semantic_ids import SemanticIDs
from .beam_search import BeamConfig, BeamResult, apply_reflection, corp_beam_search, needs_reflection, plan_chunks
from .catalogue_index import CatalogueIndex
from .crss import (
    CONFIDENCES,
    codebook_confidence,
    fixed_orders,
    inverse_permutation,
    random_orders,
    sample_next_codebook,
)
from .layers import CodebookHeads, Dropout, FusedHeads, TokenDecoder, TokenEmbedding, use_exact_dropout


AUTO = "auto"
#: How items are ranked (``score_mode``):
#: ``fused``  beam-reached items first, by token score + w * log p_ID; every other item below them;
#: ``blend``  every item by w * log p_ID + its token score (the beam's for reached items, the
#:            first-step token score for the others), so the ID head can recover the beam's misses;
#: ``tokens`` token scores alone (beam-reached items first, no ID head);
#: ``id``     an item-level head alone, no reasoning (a control): the item-ID head (``item_log_prior``),
#:            or in a model without one the composed item head (``composed_log_probs``).
#: In every mode but ``id``, ``first_step_weight`` (u) adds u * the item's first-step score (the composed
#: head's log-probability when it is trained, else the sum over codebooks of the start state's
#: log-probabilities of its tokens) to every item's score.
SCORE_MODES = ("fused", "blend", "tokens", "id")
#: Settings that act at inference only (one trained model serves every value).
INFERENCE_KEYS = (
    "score_mode", "item_fusion_weight", "first_step_weight", "reflection_weight", "reflection_threshold",
    "reasoning_steps", "beam_size",
)
#: Ablation switches that also act at inference only; :meth:`REG4Rec.configure_inference` takes
#: them too, so a trained model can be ranked without CORP or without the prior steering (controls).
INFERENCE_SWITCHES = ("corp_enabled", "beam_prior_steering")
#: ``composed_item_loss_weight: auto`` without an ID head (chosen on validation: results/faithful-study-ml-100k)
COMPOSED_WEIGHT_WITHOUT_ID_HEAD = 1.0
#: Value an ``auto`` setting has until it is chosen on validation, i.e. while training validates.
#: The ID head alone ranks during training, so each epoch is chosen without favouring any reasoning
#: setting: an epoch chosen on the fused score at w = 4 flattered exactly that setting on validation
#: and lost on test (results/inference-ml-100k, "epoch chosen on the ID head"). It also makes
#: stage 1's validation as cheap as an ID model's. (w = 4 acts when score_mode is set to fused/blend.)
PROVISIONAL = {"score_mode": "id", "item_fusion_weight": 4.0, "first_step_weight": 0.0, "reflection_weight": 0.0}
#: Beam widths ``beam_size: auto`` chooses from (with the largest topk; never above the catalogue):
#: the widest until chosen, then the narrowest that ranks validation no worse than the widest.
BEAM_SIZES = (20, 30, 50)
#: The generator: what turns an encoded history into token paths (decoder, codebook heads, start
#: state, reflection head). ``pars_train_scope: generator`` trains only these in stage 2; the encoder
#: and the item table, which the ID head also reads, keep their stage-1 weights.
GENERATOR_PARTS = ("decoder", "heads", "codebook_embedding", "bos", "reflection_head")


def load_semantic_ids(config, dataset, logger: Optional[logging.Logger] = None) -> SemanticIDs:
    """Build (or load from the tokenizer cache) the dataset's semantic IDs."""
    from ..tokenizer import build_semantic_ids

    return build_semantic_ids(config, dataset, logger=logger)


@dataclass
class EncodedContext:
    """Encoder output shared by every path of a user (B users)."""

    mem_kv: List[Tuple[torch.Tensor, torch.Tensor]]  # per decoder layer: keys, values [B, nh, T, dh]
    mem_mask: torch.Tensor  # [B, T] bool, True on real history positions
    last: torch.Tensor  # [B, H] state at the last history position
    items: Optional[torch.Tensor] = None  # [N, H] the item table the encoder read (shared by every user)

    def select(self, rows: slice) -> "EncodedContext":
        """The context of a slice of users."""
        return EncodedContext(
            [(k[rows], v[rows]) for k, v in self.mem_kv], self.mem_mask[rows], self.last[rows], self.items
        )


class REG4Rec(SequentialRecommender):
    r"""REG4Rec generator with CRSS, a reflection head and CORP beam search.

    Ablation switches (used by ``REG4Rec_wo*`` configs): ``crss_enabled`` (False: fixed
    codebook order), ``corp_enabled`` (False: plain beam search, items matched at the end),
    ``beam_prior_steering`` (False: beam paths ranked by token scores alone), tokenizer choice
    (residual tokens are ``ordered`` and force the fixed order).
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = logging.getLogger()

        # encoder (same keys as SASRec)
        self.n_layers = config["n_layers"]
        self.n_heads = config["n_heads"]
        self.hidden_size = config["hidden_size"]
        self.inner_size = config["inner_size"]
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.attn_dropout_prob = config["attn_dropout_prob"]
        self.hidden_act = config["hidden_act"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]
        self.use_item_id_embedding = bool(config["item_id_embedding"])
        # generator
        self.decoder_layers = config["decoder_layers"]
        self.token_temperature = float(config["token_temperature"])
        # the ID head is trained unless item_fusion_weight is 0 (paper-faithful); its inference weight may be auto
        self.item_head_enabled = config["item_fusion_weight"] != 0
        self.item_loss_weight = float(config["item_loss_weight"])
        self.composed_item_loss_weight = config["composed_item_loss_weight"]  # a float >= 0, checked below
        self.reflection_loss_weight = float(config["reflection_loss_weight"])
        # CRSS
        self.crss_enabled = bool(config["crss_enabled"])
        self.crss_confidence = config["crss_confidence"]
        self.crss_temperature = float(config["crss_temperature"])
        self.crss_warmup_epochs = int(config["crss_warmup_epochs"])
        self.crss_beam_branch = int(config["crss_beam_branch"])
        # inference
        self.corp_enabled = bool(config["corp_enabled"])
        self.max_topk = self._largest_topk(config)
        self.beam_pool_factor = int(config["beam_pool_factor"])
        self.beam_merge = bool(config["beam_merge"])
        self.beam_chunk_users = config["beam_chunk_users"]  # upper bound (None = budget only)
        self.beam_memory_mb = float(config["beam_memory_mb"])
        self.beam_prior_steering = bool(config["beam_prior_steering"])

        sids = load_semantic_ids(config, dataset, self.logger)
        self._check_settings(config, dataset, sids)
        self.n_codebooks = sids.n_codebooks
        self.codebook_sizes = tuple(sids.codebook_sizes)
        self.tokens_ordered = bool(sids.ordered)
        self.fixed_order = self.tokens_ordered or not self.crss_enabled
        # inference settings: the configured ones, `auto` ones provisional until chosen on validation
        configured = {key: config[key] for key in INFERENCE_KEYS}
        if configured["reasoning_steps"] in (None, 0):
            configured["reasoning_steps"] = self.n_codebooks
        if not self.item_head_enabled:  # paper-faithful: token scores only, nothing to weigh
            configured["item_fusion_weight"] = 0.0
            if configured["score_mode"] in (AUTO, "fused"):
                configured["score_mode"] = "tokens"
        #: inference settings still to be chosen on the validation split (``auto`` in the config)
        self.auto_inference = tuple(key for key, value in configured.items() if value == AUTO)
        self.configure_inference(**self.provisional_inference(), **{k: v for k, v in configured.items() if v != AUTO})
        self._check_auto_has_validation(config)
        self.first_codebook_counts = torch.zeros(self.n_codebooks, dtype=torch.long)
        self.register_buffer("codes", sids.codes.clone())  # [N, M], saved in checkpoints

        # layers
        h = self.hidden_size
        self.token_embedding = TokenEmbedding(self.codebook_sizes, h)
        self.item_embedding = nn.Embedding(self.n_items, h, padding_idx=0) if self.use_item_id_embedding else None
        self.position_embedding = nn.Embedding(self.max_seq_length, h)
        self.trm_encoder = use_exact_dropout(TransformerEncoder(
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            hidden_size=h,
            inner_size=self.inner_size,
            hidden_dropout_prob=self.hidden_dropout_prob,
            attn_dropout_prob=self.attn_dropout_prob,
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
        ))  # RecBole's encoder, its dropout masks drawn by layers.dropout (same masks, cheaper)
        self.LayerNorm = nn.LayerNorm(h, eps=self.layer_norm_eps)
        self.dropout = Dropout(self.hidden_dropout_prob)
        self.codebook_embedding = nn.Embedding(self.n_codebooks, h)
        self.bos = nn.Parameter(torch.zeros(h))
        self.decoder = TokenDecoder(
            self.decoder_layers, h, self.n_heads, self.inner_size, self.hidden_dropout_prob, self.attn_dropout_prob
        )
        self.heads = CodebookHeads(self.n_codebooks, h, self.token_temperature)
        self.reflection_head = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Linear(h, 1))
        self._epoch = -1
        self._index: Optional[CatalogueIndex] = None
        self._index_key = None
        self.apply(self._init_weights)

    # ---- setup --------------------------------------------------------------------------------
    def _check_settings(self, config, dataset, sids: SemanticIDs) -> None:
        """Fail before training on settings that cannot work."""
        m = sids.n_codebooks
        if sids.n_items != self.n_items:
            raise ValueError(f"semantic IDs cover {sids.n_items} items but the dataset has {self.n_items}")
        steps = config["reasoning_steps"]
        if steps not in (None, 0, AUTO) and not 1 <= int(steps) <= m:
            raise ValueError(f"reasoning_steps={steps} must be between 1 and the number of codebooks M={m}")
        if self.crss_confidence not in CONFIDENCES:
            raise ValueError(f"crss_confidence must be one of {CONFIDENCES}, got {self.crss_confidence!r}")
        weight = self.composed_item_loss_weight
        if weight == AUTO:  # the item-level head of a model without an ID head; none beside the ID head
            weight = 0.0 if self.item_head_enabled else COMPOSED_WEIGHT_WITHOUT_ID_HEAD
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"composed_item_loss_weight={weight!r} must be a number >= 0 (0 = off) or 'auto'")
        self.composed_item_loss_weight = float(weight)
        if self.token_temperature <= 0:
            raise ValueError(f"token_temperature must be > 0, got {self.token_temperature}")
        beam_size = config["beam_size"]
        if beam_size != AUTO:
            self._check_beam_size(beam_size)
        elif self.max_topk > self.n_items - 1:
            raise ValueError(
                f"the largest topk={self.max_topk} is larger than the catalogue ({self.n_items - 1} items): "
                f"lower topk."
            )
        if self.beam_chunk_users is not None and int(self.beam_chunk_users) < 1:
            raise ValueError(f"beam_chunk_users={self.beam_chunk_users} must be >= 1 (or ~ for no upper bound).")
        widest = self.widest_beam() if beam_size == AUTO else int(beam_size)
        beam = BeamConfig(beam_size=widest, pool_factor=self.beam_pool_factor)
        plan_chunks(self.beam_memory_mb, self.n_items, m, max(sids.codebook_sizes), beam)  # one user must fit

    @staticmethod
    def _largest_topk(config) -> int:
        topk = config["topk"]
        return max(topk) if isinstance(topk, (list, tuple)) else int(topk or 0)

    def _check_beam_size(self, beam_size) -> None:
        """A beam must fill the longest top-k list and cannot hold more items than the catalogue."""
        if isinstance(beam_size, bool) or not isinstance(beam_size, int):
            raise ValueError(f"beam_size={beam_size!r} must be an integer (paths per user and step) or 'auto'")
        if beam_size < self.max_topk:
            raise ValueError(
                f"beam_size={beam_size} is smaller than the largest topk={self.max_topk}: the beam could not fill the list"
            )
        if beam_size > self.n_items - 1:
            raise ValueError(
                f"beam_size={beam_size} is larger than the catalogue ({self.n_items - 1} items): "
                f"set beam_size to at most {self.n_items - 1}."
            )

    def widest_beam(self) -> int:
        """The widest beam ``beam_size: auto`` tries (its value until chosen)."""
        return max(self.max_topk, min(BEAM_SIZES[-1], self.n_items - 1))

    def beam_sizes(self) -> List[int]:
        """The beam widths ``beam_size: auto`` chooses from, narrowest first (see :data:`BEAM_SIZES`)."""
        widest = self.widest_beam()
        return sorted({size for size in (self.max_topk, *BEAM_SIZES) if self.max_topk <= size <= widest})

    def _check_auto_has_validation(self, config) -> None:
        """``auto`` settings are chosen on the validation split: refuse them when there is none."""
        if not self.auto_inference:
            return
        split = (config["eval_args"] or {}).get("split") or {}
        mode, value = next(iter(split.items()), (None, None))
        no_valid = (mode == "LS" and value == "test_only") or (
            mode == "RS" and (len(value) < 3 or float(value[1]) <= 0)
        )
        if no_valid:
            raise ValueError(
                f"{', '.join(f'{k}=auto' for k in self.auto_inference)} chooses the setting on the validation split, "
                f"but eval_args.split = {split} has none: use a split with validation (e.g. LS: valid_and_test) or "
                f"set {self.auto_inference[0]} to a value."
            )

    # ---- inference settings -------------------------------------------------------------------
    def inference_settings(self) -> Dict[str, Any]:
        """The current inference settings (:data:`INFERENCE_KEYS`)."""
        return {key: getattr(self, key) for key in INFERENCE_KEYS}

    def provisional_inference(self) -> Dict[str, Any]:
        """Values of the ``auto`` settings until they are chosen (:data:`PROVISIONAL`, L = M)."""
        provisional = {**PROVISIONAL, "reasoning_steps": self.n_codebooks, "beam_size": self.widest_beam()}
        return {key: provisional[key] for key in self.auto_inference}

    def configure_inference(self, **settings) -> Dict[str, Any]:
        """Validate and apply inference settings (any of :data:`INFERENCE_KEYS` and :data:`INFERENCE_SWITCHES`).

        The one place that changes how a trained model ranks items: score mode, inference
        weight of the ID head, reflection weight / threshold of CORP, reasoning steps L, and the
        CORP / prior-steering switches of the ablations.

        Returns:
            the previous values of the keys given (``configure_inference(**previous)`` restores them).

        Raises:
            ValueError: one line naming the setting and its allowed values.
        """
        unknown = sorted(set(settings) - set(INFERENCE_KEYS) - set(INFERENCE_SWITCHES))
        if unknown:
            raise ValueError(f"unknown inference setting(s) {unknown}; use {list(INFERENCE_KEYS + INFERENCE_SWITCHES)}")
        for key in INFERENCE_SWITCHES:
            if key in settings and not isinstance(settings[key], bool):
                raise ValueError(f"{key}={settings[key]!r} must be True or False")
        new = {**{k: getattr(self, k, None) for k in INFERENCE_KEYS}, **settings}
        mode = new["score_mode"]
        if mode not in SCORE_MODES:
            raise ValueError(f"score_mode={mode!r} is unknown: use one of {', '.join((AUTO,) + SCORE_MODES)}")
        if mode == "id" and not self.item_head_enabled and not self.composed_head_enabled:
            raise ValueError(
                "score_mode='id' ranks by an item-level head, but neither is trained (item_fusion_weight = 0 "
                "and composed_item_loss_weight = 0): train one of them or use score_mode 'tokens'"
            )
        if mode == "blend" and not self.item_head_enabled:
            raise ValueError(
                f"score_mode={mode!r} needs the item-ID head, but item_fusion_weight = 0 (head not trained): "
                f"train with item_fusion_weight > 0 or use score_mode 'tokens'"
            )
        for key, low in (("item_fusion_weight", 0.0), ("first_step_weight", 0.0), ("reflection_weight", 0.0)):
            value = new[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low:
                raise ValueError(f"{key}={value!r} must be a number >= {low:g} (0 = off) or 'auto'")
        threshold = new["reflection_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold < 1.0:
            raise ValueError(f"reflection_threshold={threshold!r} must lie in [0, 1) (a probability; 0 = no pruning)")
        steps = new["reasoning_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.n_codebooks:
            raise ValueError(f"reasoning_steps={steps!r} must be an integer between 1 and M={self.n_codebooks}")
        self._check_beam_size(new["beam_size"])
        previous = {key: getattr(self, key, None) for key in settings}
        for key in INFERENCE_SWITCHES:
            if key in settings:
                setattr(self, key, settings[key])
        self.score_mode = mode
        self.item_fusion_weight = float(new["item_fusion_weight"])
        self.first_step_weight = float(new["first_step_weight"])
        self.reflection_weight = float(new["reflection_weight"])
        self.reflection_threshold = float(threshold)
        self.reasoning_steps = int(steps)
        self.beam_size = int(new["beam_size"])
        return previous

    def other_parameter(self) -> Dict[str, Any]:
        """Saved in every checkpoint: the inference settings (chosen on validation when ``auto``)."""
        return {**super().other_parameter(), "inference_settings": self.inference_settings()}

    def load_other_parameter(self, para) -> None:
        para = dict(para or {})
        settings = para.pop("inference_settings", None)
        super().load_other_parameter(para)
        if settings:
            self.configure_inference(**settings)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def train(self, mode: bool = True):
        """RecBole's trainer calls ``model.train()`` once at the start of every epoch: count them
        (the CRSS warm-up is measured in epochs)."""
        if mode:
            self._epoch += 1
        return super().train(mode)

    def generator_parameters(self) -> List[nn.Parameter]:
        """Parameters of :data:`GENERATOR_PARTS` (what stage 2 trains with ``pars_train_scope: generator``)."""
        return [p for name, p in self.named_parameters() if name.split(".")[0] in GENERATOR_PARTS]

    def catalogue(self) -> CatalogueIndex:
        """The inverted index of the current ``codes`` buffer (rebuilt if the buffer changed)."""
        key = (self.codes.device, self.codes.data_ptr(), self.codes._version)
        if self._index is None or self._index_key != key:
            self._index = CatalogueIndex(self.codes, self.codebook_sizes)
            self._index_key = key
        return self._index

    def beam_config(self) -> BeamConfig:
        return BeamConfig(
            beam_size=self.beam_size,
            reasoning_steps=self.reasoning_steps,
            branch=self.crss_beam_branch,
            confidence=self.crss_confidence,
            fixed_order=self.fixed_order,
            corp=self.corp_enabled,
            reflection_threshold=self.reflection_threshold,
            reflection_weight=self.reflection_weight,
            merge=self.beam_merge,
            pool_factor=self.beam_pool_factor,
            fusion_weight=self.steering_weight(),
            block_items=self.beam_chunk_plan()[1],
        )

    def beam_chunk_plan(self) -> Tuple[int, int]:
        """Users searched at once and ``block_items`` for the ``beam_memory_mb`` budget (users
        capped by ``beam_chunk_users``)."""
        cfg = BeamConfig(beam_size=self.beam_size, pool_factor=self.beam_pool_factor)
        users, block_items = plan_chunks(
            self.beam_memory_mb, self.n_items, self.n_codebooks, max(self.codebook_sizes), cfg
        )
        if self.beam_chunk_users is not None:
            users = min(users, int(self.beam_chunk_users))
        return users, block_items

    def steering_weight(self) -> float:
        """Weight of the item prior that ranks beam paths (0: the search reads token scores only)."""
        if self.score_mode in ("fused", "blend") and self.beam_prior_steering:
            return self.item_fusion_weight
        return 0.0

    # ---- encoder ------------------------------------------------------------------------------
    def item_table(self) -> torch.Tensor:
        """Input/output representation of every item: sum of its token embeddings
        (+ its ID embedding). ``[N, H]``."""
        table = self.token_embedding.item_embeddings(self.codes)
        if self.item_embedding is not None:
            table = table + self.item_embedding.weight
        return table

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> EncodedContext:
        """Encode histories ``item_seq [B, T]`` (lengths ``[B]``) once for all their paths."""
        position_ids = torch.arange(item_seq.size(1), dtype=torch.long, device=item_seq.device)
        items = self.item_table()  # [N, H], kept in the context: the ID head reads it again
        input_emb = items[item_seq] + self.position_embedding(position_ids).unsqueeze(0)  # [B, T, H]
        input_emb = self.dropout(self.LayerNorm(input_emb))
        attention_mask = self.get_attention_mask(item_seq)
        output = self.trm_encoder(input_emb, attention_mask, output_all_encoded_layers=True)[-1]  # [B, T, H]
        last = self.gather_indexes(output, item_seq_len - 1)  # [B, H]
        mem_mask = torch.arange(item_seq.size(1), device=item_seq.device) < item_seq_len.unsqueeze(1)  # [B, T]
        return EncodedContext(self.decoder.memory_kv(output), mem_mask, last, items)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The user state at the last history position, ``[B, H]`` (as SASRec's forward)."""
        return self.encode(item_seq, item_seq_len).last

    # ---- decoder ------------------------------------------------------------------------------
    def decode(
        self, ctx: EncodedContext, codebooks: torch.Tensor, tokens: torch.Tensor, last_only: bool = False
    ) -> torch.Tensor:
        """Decoder states after each prefix of K paths per user.

        Args:
            codebooks, tokens: ``[B, K, S]`` emitted pairs.
            last_only: compute only the state after all S pairs (beam steps, order planning).

        Returns:
            ``[B, K, S + 1, H]``: position ``s`` = the state after the first ``s`` pairs
            (``[B, K, 1, H]`` with ``last_only``).
        """
        b, k, _ = codebooks.shape
        bos = (self.bos + ctx.last).view(b, 1, 1, -1).expand(b, k, 1, -1)  # [B, K, 1, H]
        steps = self.token_embedding(codebooks, tokens) + self.codebook_embedding(codebooks)  # [B, K, S, H]
        x = self.dropout(torch.cat([bos, steps], dim=2))
        return self.decoder(x, ctx.mem_kv, ctx.mem_mask, last_only=last_only)

    def token_logits(self, states: torch.Tensor) -> torch.Tensor:
        """``states [..., H]`` -> logits of every codebook ``[..., M, D]`` (-inf on pad slots)."""
        return self.heads(states, self.token_embedding.codebook_tables(), self.token_embedding.table_valid)

    def fused_heads(self) -> FusedHeads:
        """The token heads as one linear map (:meth:`.layers.CodebookHeads.fused`), to build once
        where many states are scored (beam steps, order planning)."""
        return self.heads.fused(self.token_embedding.codebook_tables(), self.token_embedding.table_padding())

    def codebook_logits(self, states: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
        """Logits of one codebook per state: ``states [..., H]``, ``codebooks [...]`` -> ``[..., D]``
        (equals :meth:`token_logits` read at ``codebooks``, cheaper)."""
        return self.heads.one_codebook(
            states, codebooks, self.token_embedding.codebook_tables(), self.token_embedding.table_valid
        )

    def step_function(
        self, ctx: EncodedContext, cached: Optional[bool] = None, reflection: bool = True, remaining_only: bool = False
    ):
        """The :data:`~.beam_search.StepFn` of these users: last decoder state -> token
        log-probabilities ``[B, K, M, D]`` and reflection log-probability ``[B, K]``.

        ``cached`` (default: in eval mode) computes everything that depends on the users or the
        weights only once, here: the decoder's step keys/values of every (codebook, token) pair
        and of each user's BOS (:meth:`.layers.TokenDecoder.step_tables`) and the heads as one
        ``H -> M x D`` map; each call then decodes just the new query of every path. Same values
        as ``cached=False`` (:meth:`decode` of the whole prefix at every call) up to float
        rounding; with dropout active (training mode) only the uncached form is exact.

        What beam search does not read can be left out (cached form): ``reflection=False`` gives
        ``None`` instead of the reflection (no reflection head); ``remaining_only``: once at
        most half of the codebooks remain, only the heads of the codebooks a path has not
        emitted yet are computed (the others' log-probs are -inf).
        """
        if cached is None:
            cached = not self.training
        if not cached:

            def step(codebooks: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
                state = self.decode(ctx, codebooks, tokens, last_only=True)[:, :, -1]  # [B, K, H]
                log_probs = torch.log_softmax(self.token_logits(state), dim=-1)
                reflect = F.logsigmoid(self.reflection_head(state).squeeze(-1))
                return log_probs, reflect

            return step
        tables = self.decoder.step_tables(self.pair_embeddings(), self.bos + ctx.last, ctx.mem_kv, ctx.mem_mask)
        heads = self.fused_heads()

        def cached_step(codebooks: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
            rows = self.token_embedding.rows(codebooks, tokens)  # [B, K, S]
            state = self.decoder.forward_last(tables, rows)  # [B, K, H]
            reflect = F.logsigmoid(self.reflection_head(state).squeeze(-1)) if reflection else None
            if remaining_only and 2 * codebooks.size(-1) >= self.n_codebooks:
                emitted = torch.zeros(*codebooks.shape[:2], self.n_codebooks, dtype=torch.bool, device=state.device)
                return heads.remaining_log_probs(state, emitted.scatter_(2, codebooks, True)), reflect
            return torch.log_softmax(heads.logits(state), dim=-1), reflect  # [B, K, M, D]

        return cached_step

    def pair_embeddings(self) -> torch.Tensor:
        """Step embedding (token + codebook embedding) of every row of the token embedding,
        ``[R, H]``; a pair's row is ``token_embedding.rows(codebook, token)``, as in :meth:`decode`."""
        return self.token_embedding.embedding.weight + self.codebook_embedding(self.token_embedding.row_codebook)

    # ---- training -----------------------------------------------------------------------------
    def sample_training_orders(self, ctx: EncodedContext, target: torch.Tensor) -> torch.Tensor:
        """CRSS training orders ``[B, M]`` (see :meth:`plan_training_paths`)."""
        return self.plan_training_paths(ctx, target)[0]

    @torch.no_grad()
    def plan_training_paths(self, ctx: EncodedContext, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """CRSS training orders and the model's wrong-token proposals, without gradient.

        Orders: fixed for ordered tokens / ``crss_enabled=False``; uniformly random during the
        ``crss_warmup_epochs``; afterwards step by step from ``softmax(confidence / T)`` of the
        model conditioned on the ground-truth tokens emitted so far (M - 1 batched passes).

        Returns:
            orders ``[B, M]`` (codebook emitted at each step) and proposals ``[B, M]``: at each
            step, the most likely token of that step's codebook other than the target's (the
            reflection head's negatives).
        """
        b, m = target.shape
        rows = torch.arange(b, device=target.device)
        if self.fixed_order or self._epoch < self.crss_warmup_epochs:
            gen = fixed_orders if self.fixed_order else random_orders
            orders = gen(b, m, target.device)
            states = self.decode(ctx, orders.unsqueeze(1), target.gather(1, orders).unsqueeze(1))[:, 0, :m]
            step_logits = self.token_logits(states).gather(
                2, orders.view(b, m, 1, 1).expand(b, m, 1, self.token_embedding.max_size)
            ).squeeze(2)  # [B, M, D] logits of each step's codebook
        else:
            # the M target pairs are known, only their order is planned: their step keys/values
            # are computed once (dropout drawn once per pair), each pass decodes one query per user
            codebooks = torch.arange(m, device=target.device).expand(b, m)
            steps = self.dropout(self.token_embedding(codebooks, target) + self.codebook_embedding(codebooks))
            bos = self.dropout(self.bos + ctx.last)
            # rows = codebooks; one query per user and pass: the history is not folded into tables
            tables = self.decoder.step_tables(steps, bos, ctx.mem_kv, ctx.mem_mask, fold_memory=False)
            heads = self.fused_heads()  # once, not per pass
            order = torch.zeros(b, 1, 0, dtype=torch.long, device=target.device)  # [B, 1, S]
            emitted = torch.zeros(b, m, dtype=torch.bool, device=target.device)
            picked = []
            for _ in range(m - 1):
                state = self.decoder.forward_last(tables, order)[:, 0]  # [B, H]
                logits = heads.logits(state)  # [B, M, D]
                conf = codebook_confidence(torch.log_softmax(logits, dim=-1), self.crss_confidence)
                nxt = sample_next_codebook(conf, emitted, self.crss_temperature)  # [B]
                emitted[rows, nxt] = True
                picked.append(logits[rows, nxt])  # [B, D]
                order = torch.cat([order, nxt.view(b, 1, 1)], dim=2)
            # the last codebook is forced; its proposal comes from the previous pass (one token less)
            nxt = (~emitted).float().argmax(dim=1)
            picked.append(logits[rows, nxt])
            order = torch.cat([order, nxt.view(b, 1, 1)], dim=2)
            orders = order.view(b, m)
            step_logits = torch.stack(picked, dim=1)  # [B, M, D]
        step_logits = step_logits.scatter(2, target.gather(1, orders).unsqueeze(-1), float("-inf"))
        return orders, step_logits.argmax(dim=-1)

    def token_loss(self, logits: torch.Tensor, target: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
        """Cross-entropy for every codebook not yet emitted at every step.

        Args:
            logits: ``[B, M (step), M (codebook), D]``; target: ``[B, M]``; orders: ``[B, M]``.
        """
        b, m = target.shape
        rank = inverse_permutation(orders)  # [B, M]
        remaining = rank.unsqueeze(1) >= torch.arange(m, device=target.device).view(1, m, 1)  # [B, M, M]
        ce = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target.unsqueeze(1).expand(b, m, m).reshape(-1), reduction="none"
        ).view(b, m, m)
        return (ce * remaining).sum() / remaining.sum()

    @staticmethod
    def negative_paths(tokens: torch.Tensor, proposals: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Reflection negatives: at one random step k the target token is replaced by the model's
        proposal; every prefix that contains it (steps >= k) is inconsistent.

        Args:
            tokens, proposals: ``[B, M]`` target tokens / wrong proposals in path order.

        Returns:
            negative tokens ``[B, M]`` and labels ``[B, M]`` of prefixes 1..M (1 = consistent).
        """
        b, m = tokens.shape
        rows = torch.arange(b, device=tokens.device)
        k = torch.randint(0, m, (b,), device=tokens.device)
        neg = tokens.clone()
        neg[rows, k] = proposals[rows, k]
        labels = (torch.arange(m, device=tokens.device).unsqueeze(0) < k.unsqueeze(1)).float()
        return neg, labels

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Token CE over every remaining codebook at every step of a CRSS-ordered teacher-forced
        path, + reflection BCE (target prefixes vs prefixes with one wrong token, decoded in the
        same pass as a second path), + item-level CE over token-composed item logits
        (``composed_item_loss_weight``), + item-level CE of the ID head when fusion is on."""
        ctx = self.encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return self.supervised_loss(ctx, interaction[self.POS_ITEM_ID])

    def supervised_loss(self, ctx: EncodedContext, pos_items: torch.Tensor) -> torch.Tensor:
        """:meth:`calculate_loss` of already encoded histories (the alignment stage shares its
        encoder pass with this term). ``pos_items [B]`` -> scalar."""
        target = self.codes[pos_items]  # [B, M]
        b, m = target.shape
        use_reflection = self.reflection_loss_weight > 0
        if use_reflection:
            orders, proposals = self.plan_training_paths(ctx, target)  # [B, M] each
        else:
            orders = self.sample_training_orders(ctx, target)
        tokens = target.gather(1, orders)  # [B, M]
        if use_reflection:
            neg_tokens, neg_labels = self.negative_paths(tokens, proposals)
            states = self.decode(
                ctx, orders.unsqueeze(1).expand(b, 2, m), torch.stack([tokens, neg_tokens], dim=1)
            )  # [B, 2, M + 1, H]: target path, negative path
        else:
            states = self.decode(ctx, orders.unsqueeze(1), tokens.unsqueeze(1))
        logits = self.token_logits(states[:, 0, :-1])  # [B, M, M, D]
        loss = self.token_loss(logits, target, orders)
        if use_reflection:
            refl = self.reflection_head(states[:, :, 1:]).squeeze(-1)  # [B, 2, M]
            labels = torch.stack([torch.ones_like(neg_labels), neg_labels], dim=1)
            loss = loss + self.reflection_loss_weight * F.binary_cross_entropy_with_logits(refl, labels)
        if self.composed_item_loss_weight > 0:
            item_logits = self.composed_item_logits(ctx.last)  # [B, N]
            loss = loss + self.composed_item_loss_weight * F.cross_entropy(item_logits, pos_items)
        if self.item_head_enabled and self.item_loss_weight > 0:
            items = ctx.items if ctx.items is not None else self.item_table()  # the encoder already built it
            item_logits = ctx.last @ items.t()  # [B, N]
            loss = loss + self.item_loss_weight * F.cross_entropy(item_logits, pos_items)
        return loss

    @property
    def composed_head_enabled(self) -> bool:
        """Whether the token-composed item head is trained (``composed_item_loss_weight`` > 0)."""
        return self.composed_item_loss_weight > 0

    def composed_item_logits(self, user_state: torch.Tensor) -> torch.Tensor:
        """Item logits of the token-composed item head: ``user_state [B, H]`` -> ``[B, N]``, item ``i``
        scored ``user_state . sum_r e_r(codes[i, r])`` with the (input) token embeddings ``e_r``
        (item 0, the padding, -inf).

        An item-level softmax over these is an item-level objective in token space: whole items are
        ranked as an ID softmax would rank them, but every item is built from token weights that
        items share (no per-item output parameter, as in RecJPQ). It is a head of its own on the
        encoder's user state: the decoder's per-codebook heads, which the beam reads, keep their
        own objective (sharing the start state's logits between both objectives degraded the
        beam, see ``results/faithful-study-ml-100k``).
        """
        tokens_only = self.token_embedding.item_embeddings(self.codes)  # [N, H], no ID embedding
        scores = user_state @ tokens_only.t()
        return scores.index_fill(1, torch.zeros(1, dtype=torch.long, device=scores.device), float("-inf"))

    def composed_log_probs(self, ctx: EncodedContext) -> torch.Tensor:
        """The composed item head's item log-probabilities ``[B, N]`` (item 0 -inf)."""
        return torch.log_softmax(self.composed_item_logits(ctx.last), dim=-1)

    def item_token_sums(self, token_scores: torch.Tensor) -> torch.Tensor:
        """Per-token scores of every codebook summed over each item's tokens: ``token_scores [B, M, D]``
        -> ``[B, N]``, item ``i`` getting ``sum_r token_scores[:, r, codes[i, r]]`` (summed in place:
        one ``[B, N]`` tensor, whatever M)."""
        codes_t = self.catalogue().codes_t  # [M, N]
        scores = token_scores[:, 0].index_select(1, codes_t[0])
        for r in range(1, self.n_codebooks):
            scores += token_scores[:, r].index_select(1, codes_t[r])
        return scores

    # ---- inference ----------------------------------------------------------------------------
    def item_log_prior(self, ctx: EncodedContext) -> Optional[torch.Tensor]:
        """Item-level log-probabilities ``[B, N]`` of the ID head (None when it is not trained)."""
        if not self.item_head_enabled:
            return None
        # the encoder's table: one [N, H] build per batch, not one per chunk of users (N-sized work)
        logits = ctx.last @ (ctx.items if ctx.items is not None else self.item_table()).t()
        logits[:, 0] = float("-inf")
        return torch.log_softmax(logits, dim=-1)

    def item_level_scores(self, ctx: EncodedContext) -> torch.Tensor:
        """What score mode ``id`` ranks by, ``[B, N]``: the ID head's log-probabilities, or the composed
        item head's in a model without an ID head (a control: the model's item-level head, no reasoning)."""
        return self.item_log_prior(ctx) if self.item_head_enabled else self.composed_log_probs(ctx)

    def path_scores(self, ctx: EncodedContext, items: torch.Tensor) -> torch.Tensor:
        """Token score of one item per user along its greedy CRSS path (no beam): ``items [B]`` -> ``[B]``,
        plus ``first_step_weight`` times the item's first-step score.

        Equals what a beam wide enough (``crss_beam_branch`` = 1) gives that item.
        """
        b = items.size(0)
        target = self.codes[items]  # [B, M]
        step = self.step_function(ctx)
        cfg = self.beam_config()
        cb = torch.zeros(b, 1, 0, dtype=torch.long, device=items.device)
        emitted = torch.zeros(b, 1, self.n_codebooks, dtype=torch.bool, device=items.device)
        score = torch.zeros(b, 1, device=items.device)
        if self.first_step_weight and self.composed_head_enabled:  # the whole item, from the composed head
            whole = self.composed_log_probs(ctx).gather(1, items.unsqueeze(1))
            score = score + self.first_step_weight * whole  # [B, 1]
        for s in range(self.reasoning_steps + 1):
            log_probs, reflect = step(cb, target.gather(1, cb.view(b, -1)).view(b, 1, -1))  # [B, 1, M, D]
            if s > 0 and cfg.corp:
                score, _ = apply_reflection(score, reflect, cfg)
            tok_lp = log_probs.gather(3, target.view(b, 1, -1, 1)).squeeze(-1)  # [B, 1, M]
            if s == 0 and self.first_step_weight and not self.composed_head_enabled:  # the start state's view
                score = score + self.first_step_weight * tok_lp.sum(-1)
            if s == self.reasoning_steps:
                return (score + tok_lp.masked_fill(emitted, 0.0).sum(-1)).squeeze(1)
            if self.fixed_order:
                r = torch.full((b, 1), s, dtype=torch.long, device=items.device)
            else:
                conf = codebook_confidence(log_probs, self.crss_confidence).masked_fill(emitted, float("-inf"))
                r = conf.argmax(dim=-1)  # [B, 1]
            score = score + tok_lp.gather(2, r.unsqueeze(-1)).squeeze(-1)
            emitted = emitted.scatter(2, r.unsqueeze(-1), True)
            cb = torch.cat([cb, r.unsqueeze(-1)], dim=2)
        raise AssertionError("unreachable")

    def predict(self, interaction) -> torch.Tensor:
        """Scores of ``interaction[ITEM_ID]`` (sampled evaluation): greedy-path token score
        (+ w * item log-probability), or the ID head alone in score mode ``id``. ``[B]``."""
        ctx = self.encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID]
        prior = self.item_log_prior(ctx)
        if self.score_mode == "id":
            return self.item_level_scores(ctx).gather(1, items.unsqueeze(1)).squeeze(1)
        score = self.path_scores(ctx, items)
        if self.score_mode in ("fused", "blend"):
            score = score + self.item_fusion_weight * prior.gather(1, items.unsqueeze(1)).squeeze(1)
        return score

    def beam_search(
        self, ctx: EncodedContext, trace: bool = True
    ) -> Tuple[BeamResult, Optional[torch.Tensor], torch.Tensor]:
        """Run CORP beam search for the users of ``ctx`` (one chunk).

        ``trace=False`` (ranking) computes only what the item scores need: no reflection after
        the last step (``step_reflection`` is NaN there, everywhere without reflection scoring),
        no head of a codebook a path already emitted.

        Returns the :class:`BeamResult`, the item log-prior ``[B, N]`` (or None) and the
        first-step score ``[B, N]``: every item judged whole before any reasoning step, i.e. the
        composed head's item log-probabilities when it is trained, else the start state's
        log-probabilities of the item's tokens summed over codebooks. It orders the items the beam
        does not reach (the fallback) and is what ``first_step_weight`` adds to every score.
        """
        b = ctx.last.size(0)
        cfg = self.beam_config()
        cfg.trace = trace
        step = self.step_function(ctx, reflection=needs_reflection(cfg), remaining_only=not trace)
        index = self.catalogue()
        prior = self.item_log_prior(ctx)
        whole = self.composed_log_probs(ctx) if self.composed_head_enabled else None  # [B, N]
        steer = prior
        if prior is None and whole is not None and self.first_step_weight and self.beam_prior_steering and cfg.corp:
            # no ID head: the composed head, which the scores add with weight u, steers the paths as the ID head
            # would (a path ranked by its token score + u * log(mass of its consistent items))
            steer, cfg.fusion_weight = whole, self.first_step_weight
        result = corp_beam_search(step, index, b, cfg, steer)
        # the search's first step already scored the empty path: no decoder pass of its own
        fallback = whole if whole is not None else self.item_token_sums(result.start_log_probs)
        return result, prior, fallback

    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Scores of every item ``[B, N]`` under ``score_mode`` (see :data:`SCORE_MODES`): by default
        items reached by the beam first (fused path score), every other item below them, ordered
        by its fallback score."""
        ctx = self.encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        b = ctx.last.size(0)
        chunk = self.beam_chunk_plan()[0]  # from beam_memory_mb: memory independent of the batch
        out = torch.empty(b, self.n_items, device=ctx.last.device)
        for start in range(0, b, chunk):
            out[start:start + chunk] = self._rank_chunk(ctx.select(slice(start, start + chunk)))
        return out

    def _rank_chunk(self, ctx: EncodedContext) -> torch.Tensor:
        """Scores ``[B, N]`` of one chunk of users under the current ``score_mode``."""
        if self.score_mode == "id":  # the item-level head alone: no search
            scores = self.item_level_scores(ctx)
            scores[:, 0] = float("-inf")
            return scores
        result, prior, fallback = self.beam_search(ctx, trace=False)
        self._count_first_codebooks(result)
        token_score = result.item_scores  # [B, N], -inf = not reached
        # the first-step score (the fallback) of every item, weighted: how likely the start state, before any
        # reasoning step, finds the whole item. It re-ranks the reached items (in `tokens` mode the others'
        # order is this score already); reached items stay above the rest as before
        first_step = self.first_step_weight * fallback if self.first_step_weight else None
        if self.score_mode == "tokens":
            return rank_beam_first(token_score, fallback, first_step)
        w = self.item_fusion_weight
        bonus = w * prior if first_step is None else w * prior + first_step
        if self.score_mode == "fused":
            return rank_beam_first(token_score, fallback, bonus)
        # blend: one scale for every item, so the ID head can lift an item the beam missed
        scores = bonus + torch.where(torch.isfinite(token_score), token_score, fallback)
        scores[:, 0] = float("-inf")
        return scores

    def _count_first_codebooks(self, result: BeamResult) -> None:
        """Count the codebook each user's best path emitted first (CRSS diversity across users)."""
        best = result.codebooks[:, 0, 0][torch.isfinite(result.path_scores[:, 0])]
        self.first_codebook_counts += torch.bincount(best.cpu(), minlength=self.n_codebooks)

    def first_codebook_report(self, reset: bool = True) -> Dict[str, Any]:
        """Users counted since the last reset, the count per first codebook of their best path
        and the share of users whose first codebook differs from the most common one."""
        counts = self.first_codebook_counts.clone()
        if reset:
            self.first_codebook_counts.zero_()
        total = int(counts.sum())
        share = 1.0 - int(counts.max()) / total if total else math.nan
        return {"users": total, "counts": counts.tolist(), "share_differs_from_most_common": share}


def rank_beam_first(beam_score: torch.Tensor, fallback: torch.Tensor, bonus: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Combine ``[B, N]`` beam scores (-inf = not reached) and fallback scores so that every
    reached item is above every other item; both groups keep their own order; item 0 is -inf.
    ``bonus [B, N]`` (e.g. the weighted ID head), if given, is added to both first.

    The beam reaches few items per user: they are handled as a sparse list, and the dense work
    is the fallback (plus bonus) and its maximum, a few passes over ``[B, N]``.
    """
    reached = torch.isfinite(beam_score)
    reached[:, 0] = False
    user, item = reached.nonzero(as_tuple=True)
    vals = beam_score[user, item]
    if bonus is not None:
        vals = vals + bonus[user, item]
        keep = torch.isfinite(vals)
        user, item, vals = user[keep], item[keep], vals[keep]
    fb = fallback + bonus if bonus is not None else fallback.clone()
    fb[:, 0] = float("-inf")
    highest_fb = fb[:, 1:].max(dim=1).values  # of the finite fallbacks: recomputed where +inf / NaN occur
    odd = torch.isnan(highest_fb) | torch.isposinf(highest_fb)
    if bool(odd.any()):
        rows = fb[odd, 1:]
        highest_fb[odd] = torch.where(torch.isfinite(rows), rows, torch.full_like(rows, float("-inf"))).max(dim=1).values
    b = beam_score.size(0)
    lowest_beam = beam_score.new_full((b,), float("inf")).scatter_reduce(0, user, vals, "amin")
    any_reached = torch.bincount(user, minlength=b) > 0
    shift = torch.where(any_reached, (highest_fb - lowest_beam).clamp_min(0) + 1.0, torch.zeros_like(highest_fb))
    fb[user, item] = vals + shift[user]
    return fb
