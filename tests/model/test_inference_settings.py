"""Inference settings of REG4Rec: one entry point, score modes (ID head alone as a control),
reflection acting at inference, CRSS first-codebook diversity, and the clean ablations."""

from __future__ import annotations

import pytest
import torch
from recbole.config import Config

from tiny_models import build_tiny
from recbole_reg4rec.model import REG4Rec_woMPQ, REG4Rec_woSteering
from recbole_reg4rec.model.reg4rec import INFERENCE_KEYS, rank_beam_first
from recbole_reg4rec.tokenizer.product import train_pq_kmeans


@pytest.fixture
def tiny(monkeypatch, workdir):
    model, _, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0, "score_mode": "fused"})
    model.eval()
    inter = next(iter(test))[0]
    return model, inter


def _scores(model, inter, **settings):
    previous = model.configure_inference(**settings)
    try:
        with torch.no_grad():
            return model.full_sort_predict(inter)
    finally:
        model.configure_inference(**previous)


def test_configure_inference_applies_and_restores(tiny):
    model, _ = tiny
    before = model.inference_settings()
    assert set(before) == set(INFERENCE_KEYS)
    previous = model.configure_inference(score_mode="blend", item_fusion_weight=1.5, reasoning_steps=2)
    assert model.beam_config().reasoning_steps == 2 and model.beam_config().fusion_weight == 1.5
    assert previous == {k: before[k] for k in ("score_mode", "item_fusion_weight", "reasoning_steps")}
    model.configure_inference(**previous)
    assert model.inference_settings() == before


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"score_mode": "vibes"}, "score_mode='vibes' is unknown"),
        ({"reflection_weight": -0.5}, "reflection_weight=-0.5 must be a number >= 0"),
        ({"reflection_threshold": 1.5}, "reflection_threshold=1.5 must lie in"),
        ({"reasoning_steps": 9}, "reasoning_steps=9 must be an integer between 1 and M=3"),
        ({"beam_size": 3}, "beam_size=3 is smaller than the largest topk=5"),
        ({"beam_size": "wide"}, "beam_size='wide' must be an integer"),
        ({"beam_width": 30}, "unknown inference setting"),
    ],
)
def test_bad_inference_settings_are_refused_and_change_nothing(tiny, settings, match):
    model, _ = tiny
    before = model.inference_settings()
    with pytest.raises(ValueError, match=match) as err:
        model.configure_inference(**settings)
    assert "\n" not in str(err.value)
    assert model.inference_settings() == before


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"score_mode": "vibes"}, "score_mode='vibes' is unknown"),
        ({"reflection_weight": -1.0}, "reflection_weight=-1.0 must be a number >= 0"),
        ({"item_fusion_weight": 0.0, "composed_item_loss_weight": 0.0, "score_mode": "id"},
         "score_mode=.id. ranks by an item-level head, but neither is trained"),
        ({"item_fusion_weight": 0.0, "score_mode": "blend"}, "score_mode=.blend. needs the item-ID head"),
        ({"reflection_weight": "auto", "eval_args": {"split": {"LS": "test_only"}, "order": "TO", "mode": "full"}},
         "reflection_weight=auto.* chooses the setting on the validation split, but eval_args.split"),
    ],
)
def test_bad_inference_config_fails_before_training_in_one_line(monkeypatch, workdir, extra, match):
    with pytest.raises(ValueError, match=match) as err:
        build_tiny(monkeypatch, workdir, extra)
    assert "\n" not in str(err.value)


def test_id_head_alone_ranks_by_item_log_prior(tiny):
    model, inter = tiny
    with torch.no_grad():
        prior = model.item_log_prior(model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN]))
    scores = _scores(model, inter, score_mode="id")
    assert torch.isneginf(scores[:, 0]).all()
    torch.testing.assert_close(scores[:, 1:], prior[:, 1:])
    assert torch.equal(scores[:, 1:].argsort(dim=1, descending=True), prior[:, 1:].argsort(dim=1, descending=True))
    # the same weights ranked with their token reasoning give another ranking
    assert not torch.equal(_scores(model, inter, score_mode="fused").argsort(dim=1), scores.argsort(dim=1))


def test_blend_scores_every_item_on_one_scale(tiny):
    model, inter = tiny
    model.configure_inference(score_mode="blend", item_fusion_weight=3.0)
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        result, prior, fallback = model.beam_search(ctx)
        scores = model.full_sort_predict(inter)
    token = torch.where(torch.isfinite(result.item_scores), result.item_scores, fallback)
    torch.testing.assert_close(scores[:, 1:], 3.0 * prior[:, 1:] + token[:, 1:])


def test_token_mode_ignores_the_id_head_weight(tiny):
    model, inter = tiny
    light = _scores(model, inter, score_mode="tokens", item_fusion_weight=1.0)
    heavy = _scores(model, inter, score_mode="tokens", item_fusion_weight=8.0)
    assert torch.equal(light, heavy)
    model.configure_inference(score_mode="tokens")
    assert model.beam_config().fusion_weight == 0.0  # the search is not steered by the ID head either
    assert not torch.equal(_scores(model, inter, score_mode="fused", item_fusion_weight=8.0), heavy)


def test_reflection_changes_rankings_only_when_on(tiny):
    model, inter = tiny

    def with_random_reflection_head(**settings):
        state = {k: v.clone() for k, v in model.reflection_head.state_dict().items()}
        first = _scores(model, inter, **settings)
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.reflection_head.parameters():
                p.normal_(0, 2.0)
        second = _scores(model, inter, **settings)
        model.reflection_head.load_state_dict(state)
        return first, second

    off = with_random_reflection_head(score_mode="fused", reflection_weight=0.0, reflection_threshold=0.0)
    assert torch.equal(*off)
    soft = with_random_reflection_head(score_mode="fused", reflection_weight=1.0)
    assert not torch.equal(*soft)
    hard = with_random_reflection_head(score_mode="fused", reflection_threshold=0.5)
    assert not torch.equal(*hard)


def test_first_codebook_report_counts_every_user(tiny):
    model, inter = tiny
    model.first_codebook_report(reset=True)
    with torch.no_grad():
        result = model.beam_search(model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN]))[0]
    model.first_codebook_report(reset=True)
    _scores(model, inter)
    report = model.first_codebook_report()
    first = result.codebooks[:, 0, 0].tolist()
    assert report["users"] == inter.length and sum(report["counts"]) == inter.length
    assert report["counts"] == [first.count(r) for r in range(model.n_codebooks)]
    top = max(report["counts"])
    assert report["share_differs_from_most_common"] == pytest.approx(1 - top / inter.length)
    assert model.first_codebook_report()["users"] == 0  # reset
    _scores(model, inter, score_mode="id")  # the ID head alone runs no search
    assert model.first_codebook_report()["users"] == 0


def test_auto_settings_are_provisional_until_chosen(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir, {"score_mode": "auto", "item_fusion_weight": "auto",
                                                     "reflection_weight": "auto", "reasoning_steps": "auto"})
    assert set(model.auto_inference) == {"score_mode", "item_fusion_weight", "first_step_weight", "reflection_weight",
                                         "reasoning_steps"}  # first_step_weight: auto by default
    assert model.item_head_enabled
    # training validates on the ID head alone until the settings are chosen (no reasoning setting favoured)
    assert model.inference_settings() == {"score_mode": "id", "item_fusion_weight": 4.0, "first_step_weight": 0.0,
                                          "reflection_weight": 0.0,
                                          "reflection_threshold": 0.0, "reasoning_steps": model.n_codebooks,
                                          "beam_size": 10}  # configured (tests/tiny_models.py), not auto
    assert model.provisional_inference() == {k: v for k, v in model.inference_settings().items()
                                             if k in model.auto_inference}
    explicit, _, _ = build_tiny(monkeypatch, workdir, {"score_mode": "fused", "item_fusion_weight": "auto"})
    assert explicit.inference_settings()["score_mode"] == "fused" and explicit.item_fusion_weight == 4.0


def test_paper_faithful_model_ranks_by_tokens(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 0.0, "score_mode": "auto"})
    assert not model.item_head_enabled and model.score_mode == "tokens"
    assert "score_mode" not in model.auto_inference and "item_fusion_weight" not in model.auto_inference  # one choice
    assert model.composed_item_loss_weight == 1.0  # auto: the composed head is its item-level head
    with pytest.raises(ValueError, match="needs the item-ID head"):
        model.configure_inference(score_mode="blend")
    full, _, _ = build_tiny(monkeypatch, workdir, {"item_fusion_weight": "auto"})
    assert full.composed_item_loss_weight == 0.0  # auto beside the ID head: off


def test_composed_head_alone_and_steering_without_an_id_head(monkeypatch, workdir):
    """Without an ID head, score mode ``id`` ranks by the composed head alone (a control), and with u > 0 the
    composed head steers the beam: other paths survive than with ``beam_prior_steering`` off."""
    model, _, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 0.0, "pars_enabled": False})
    model.eval()
    inter = next(iter(test))[0]
    with torch.no_grad():
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        model.configure_inference(score_mode="id")
        alone = model.full_sort_predict(inter)
        expected = model.composed_log_probs(ctx)
        torch.testing.assert_close(alone[:, 1:], expected[:, 1:])
        model.configure_inference(score_mode="tokens", first_step_weight=4.0, beam_size=5)
        steered, _, _ = model.beam_search(ctx, trace=False)
        model.configure_inference(beam_prior_steering=False)
        plain, _, _ = model.beam_search(ctx, trace=False)
    assert not torch.equal(torch.isfinite(steered.item_scores), torch.isfinite(plain.item_scores))


# ---- clean ablations ----------------------------------------------------------------------------
def test_wo_mpq_keeps_crss_over_unordered_product_tokens():
    config = Config(model="REG4Rec_woMPQ", dataset="ml-100k")
    assert config["tokenizer"] == "pq" and config["crss_enabled"] and REG4Rec_woMPQ.FIXED == {"tokenizer": "pq"}
    g = torch.Generator().manual_seed(0)
    features = torch.randn(200, 10, generator=g)
    result = train_pq_kmeans(features, n_codebooks=3, codebook_size=8, seed=0)
    assert result.codes.shape == (200, 3) and int(result.codes.max()) < 8
    assert torch.unique(result.codes, dim=0).size(0) == 200  # collisions resolved as MPQ's are
    assert 0.0 < result.recon_error < 1.0
    # each token depends on its own block of the features only
    moved = features.clone()
    moved[:, 8:] = torch.randn(200, 2, generator=g)  # block 2 = columns 8..11 (10 padded to 12)
    other = train_pq_kmeans(moved, n_codebooks=3, codebook_size=8, seed=0, resolve=False)
    plain = train_pq_kmeans(features, n_codebooks=3, codebook_size=8, seed=0, resolve=False)
    assert torch.equal(other.codes[:, :2], plain.codes[:, :2]) and not torch.equal(other.codes[:, 2], plain.codes[:, 2])


def test_wo_mpq_model_orders_tokens_by_crss(monkeypatch, workdir):
    model, _, _ = build_tiny(monkeypatch, workdir, {"tokenizer": "pq"})
    assert not model.fixed_order


def test_wo_steering_changes_only_the_path_ranking(monkeypatch, workdir):
    assert REG4Rec_woSteering.FIXED == {"beam_prior_steering": False}
    model, _, test = build_tiny(monkeypatch, workdir, {"item_fusion_weight": 2.0, "score_mode": "fused"})
    model.eval()
    inter = next(iter(test))[0]
    assert model.beam_config().fusion_weight == 2.0
    steered = _scores(model, inter, score_mode="fused")
    previous = model.configure_inference(beam_prior_steering=False)
    cfg = model.beam_config()
    assert cfg.fusion_weight == 0.0 and cfg.corp and model.item_fusion_weight == 2.0
    assert not torch.equal(_scores(model, inter, score_mode="fused"), steered)
    model.configure_inference(**previous)
    assert previous == {"beam_prior_steering": True} and model.beam_config().fusion_weight == 2.0
    model.configure_inference(corp_enabled=False)
    assert not model.beam_config().corp
    with pytest.raises(ValueError, match="corp_enabled='no' must be True or False"):
        model.configure_inference(corp_enabled="no")


def test_first_step_weight_reranks_reached_items_only(tiny):
    """u * (the item's first-step score) is added to every item: in ``tokens`` mode the beam-reached items are
    re-ranked among themselves and the others keep their order (their score is that first-step score); in every
    mode the reached items stay above the others, and u = 0 changes nothing."""
    model, inter = tiny
    for mode in ("tokens", "fused"):
        off = _scores(model, inter, score_mode=mode, first_step_weight=0.0)
        on = _scores(model, inter, score_mode=mode, first_step_weight=2.0)
        assert not torch.equal(off, on)
        model.configure_inference(score_mode=mode, first_step_weight=0.0)
        with torch.no_grad():
            ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
            result, _, fallback = model.beam_search(ctx, trace=False)
        reached = torch.isfinite(result.item_scores)
        reached[:, 0] = False
        assert reached.any()
        for u in range(on.size(0)):
            below = ~reached[u]
            below[0] = False
            if mode == "tokens":
                assert torch.equal(on[u, below].argsort(stable=True), off[u, below].argsort(stable=True))
                assert torch.equal(fallback[u, below].argsort(stable=True), off[u, below].argsort(stable=True))
            if reached[u].any():
                assert on[u, reached[u]].min() > on[u, below].max()
    # u = 0: the token ranking as it was, beam-reached items by their path score, the rest by the fallback
    model.configure_inference(score_mode="tokens", first_step_weight=0.0)
    with torch.no_grad():
        result, _, fallback = model.beam_search(ctx, trace=False)
    assert torch.equal(_scores(model, inter), rank_beam_first(result.item_scores, fallback))
    with pytest.raises(ValueError, match="first_step_weight=-1.0 must be a number >= 0"):
        model.configure_inference(first_step_weight=-1.0)


@pytest.mark.parametrize("composed_head", [False, True])
def test_sampled_scores_add_the_first_step_score_of_the_item(tiny, composed_head, monkeypatch):
    """predict() (sampled evaluation) scores an item by its greedy path plus u * its first-step score, which
    full-sort ranking reads as the fallback: the start state's token log-probabilities, or the composed
    item head's log-probabilities once that head is trained."""
    model, inter = tiny
    monkeypatch.setattr(model, "composed_item_loss_weight", 1.0 if composed_head else 0.0)
    items = inter[model.ITEM_ID]
    model.configure_inference(score_mode="tokens", first_step_weight=0.0)
    with torch.no_grad():
        plain = model.predict(inter)
        ctx = model.encode(inter[model.ITEM_SEQ], inter[model.ITEM_SEQ_LEN])
        _, _, fallback = model.beam_search(ctx, trace=False)
        model.configure_inference(first_step_weight=1.5)
        with_first_step = model.predict(inter)
    torch.testing.assert_close(with_first_step, plain + 1.5 * fallback.gather(1, items.unsqueeze(1)).squeeze(1))
