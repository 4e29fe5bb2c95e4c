"""MPQ and residual quantizers on small tensors (no RecBole dataset involved)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from recbole_reg4rec.tokenizer import SemanticIDs, TokenizerConfigError, TokenizerSettings
from recbole_reg4rec.tokenizer.diagnostics import collision_stats, make_report, mean_abs_latent_cosine
from recbole_reg4rec.tokenizer.mpq import latent_orthogonality, resolve_collisions, train_mpq
from recbole_reg4rec.tokenizer.residual import dedup_tokens, train_rq_kmeans

REPO = Path(__file__).resolve().parents[2]


def toy_features(n: int = 120, d: int = 16, clusters: int = 6, seed: int = 0) -> torch.Tensor:
    """``[n, d]``: clustered points, so quantization has structure to find."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(clusters, d, generator=g)
    return centres[torch.arange(n) % clusters] + torch.randn(n, d, generator=g)


def small(**overrides) -> TokenizerSettings:
    base = dict(n_codebooks=3, codebook_size=8, mpq_epochs=15, mpq_expert_hidden=32, mpq_latent_dim=8,
                mpq_batch_size=64, tokenizer_seed=7)
    base.update(overrides)
    return TokenizerSettings(**base)


def test_mpq_tokens_have_the_right_shape_range_and_usage():
    result = train_mpq(toy_features(), small(), show_progress=False)
    assert result.codes.shape == (120, 3) and result.codes.dtype == torch.long
    assert int(result.codes.min()) >= 0 and int(result.codes.max()) < 8
    assert result.latents.shape == (120, 3, 8)
    report = make_report("mpq", result.codes, (8, 8, 8), result.recon_error, result.latents)
    assert all(p > 8 / 4 for p in report.perplexity), report.table()  # no collapsed codebook
    assert 0 < result.recon_error < 1
    assert len(result.history) == 15 and result.history[-1]["recon"] < result.history[0]["recon"]


def test_mpq_same_seed_same_tokens_and_global_rng_untouched():
    features = toy_features()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = train_mpq(features, small(), show_progress=False).codes
    after = torch.rand(3)
    b = train_mpq(features, small(), show_progress=False).codes
    c = train_mpq(features, small(tokenizer_seed=8), show_progress=False).codes
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(after, expected_next)  # the tokenizer seeds locally


def test_orthogonality_term_lowers_latent_cosine():
    features = toy_features(d=24)
    cos = {
        w: mean_abs_latent_cosine(train_mpq(features, small(mpq_orth_weight=w, mpq_epochs=30), show_progress=False).latents)
        for w in (0.0, 1.0)
    }
    assert cos[1.0] < 0.6 * cos[0.0], cos


def test_latent_orthogonality_is_mean_squared_cosine_of_distinct_pairs():
    e = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]])  # [1, 3, 2]
    # pairs: (0,1) cos 0, (0,2) cos 1/sqrt2, (1,2) cos 1/sqrt2 -> squares 0, .5, .5 (each twice)
    assert float(latent_orthogonality(e)) == pytest.approx(1 / 3)
    assert float(latent_orthogonality(e[:, :1])) == 0.0


def test_resolve_collisions_moves_only_colliders_to_their_cheapest_free_alternative():
    codebooks = torch.tensor([[[0.0], [1.0], [5.0]], [[0.0], [1.0], [5.0]]])  # [M=2, D=3, H=1]
    latents = torch.tensor([[[0.0], [0.0]], [[0.1], [0.6]], [[5.0], [5.0]]])  # [N=3, 2, 1]
    codes = torch.tensor([[0, 0], [0, 0], [2, 2]])
    new, moved = resolve_collisions(latents, codebooks, codes)
    assert moved == 1
    assert new[0].tolist() == [0, 0] and new[2].tolist() == [2, 2]  # keeper and non-colliders untouched
    assert new[1].tolist() == [0, 1]  # codebook 1 moves to 1.0 (cost 0.16-0.36) not codebook 0 (0.81-0.01)
    assert collision_stats(new) == (1.0, 1)


def test_rq_tokens_are_unique_after_dedup_and_ordered_by_refinement():
    features = torch.cat([toy_features(n=60), toy_features(n=20)[:20]])  # 20 exact duplicates
    result = train_rq_kmeans(features, n_levels=2, codebook_size=8, seed=0)
    assert result.codes.shape == (80, 3)
    assert collision_stats(result.prefix_codes)[0] < 1.0  # duplicates collide before de-dup
    assert collision_stats(result.codes) == (1.0, 1)
    assert result.codebook_sizes[:2] == (8, 8) and result.codebook_sizes[2] == int(result.codes[:, 2].max()) + 1
    assert 0 <= result.recon_error < 1
    level1_only = train_rq_kmeans(features, n_levels=1, codebook_size=8, seed=0)
    assert result.recon_error < level1_only.recon_error  # the second level refines the first


def test_dedup_tokens_rank_items_within_each_group_in_item_order():
    codes = torch.tensor([[1, 2], [0, 0], [1, 2], [1, 2], [0, 0], [3, 3]])
    assert dedup_tokens(codes).tolist() == [0, 0, 1, 2, 1, 0]


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"n_codebooks": 0}, "n_codebooks"),
        ({"codebook_size": 1}, "codebook_size"),
        ({"tokenizer": "vq"}, "tokenizer"),
        ({"mpq_lr": 0}, "mpq_lr"),
        ({"mpq_orth_weight": -1.0}, "mpq_orth_weight"),
        ({"n_codebooks": "4"}, "n_codebooks"),
    ],
)
def test_bad_settings_name_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        TokenizerSettings.from_config(overrides)


def test_codebook_larger_than_catalogue_is_refused():
    with pytest.raises(TokenizerConfigError, match=r"codebook_size=64 .*\(50 items\).*at most 50"):
        TokenizerSettings.from_config({"codebook_size": 64}).check_catalogue(50)


def test_seed_falls_back_to_config_seed():
    assert TokenizerSettings.from_config({"seed": 42}).tokenizer_seed == 42
    assert TokenizerSettings.from_config({"seed": 42, "tokenizer_seed": 3}).tokenizer_seed == 3
    assert TokenizerSettings.from_config({"seed": 42, "tokenizer_seed": None}).tokenizer_seed == 42


def test_explicit_null_cache_dir_disables_the_cache():
    assert TokenizerSettings.from_config({}).tokenizer_cache_dir == "saved/semantic_ids"
    assert TokenizerSettings.from_config({"tokenizer_cache_dir": None}).tokenizer_cache_dir is None


def test_yaml_defaults_match_settings_defaults():
    """Every key of tokenizer.yaml is a setting and every setting has its default there, with the
    value and type a plain yaml parser reads (the settings read the file with RecBole's loader)."""
    with open(REPO / "properties" / "tokenizer.yaml") as f:
        from_yaml = yaml.safe_load(f)
    defaults = TokenizerSettings()
    assert set(from_yaml) == {f for f in defaults.__dataclass_fields__}
    for key, value in from_yaml.items():
        assert getattr(defaults, key) == value and type(getattr(defaults, key)) is type(value), key
    defaults.validate()


def test_semantic_ids_contract_accepts_tokenizer_output():
    result = train_rq_kmeans(toy_features(n=40), n_levels=2, codebook_size=4, seed=0)
    pad = torch.tensor(result.codebook_sizes).unsqueeze(0)
    sem = SemanticIDs(torch.cat([pad, result.codes]), result.codebook_sizes, ordered=True)
    assert sem.n_items == 41 and sem.n_codebooks == 3
