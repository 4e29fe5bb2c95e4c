"""MPQ collision resolution on groups of any size, and the bounded MPQ training time."""

from __future__ import annotations

import pytest
import torch

from recbole_reg4rec.tokenizer.diagnostics import collision_stats
from recbole_reg4rec.tokenizer.mpq import capped_epochs, resolve_collisions
from recbole_reg4rec.tokenizer.settings import TokenizerConfigError, TokenizerSettings


def _latents_at(codebooks: torch.Tensor, codes: torch.Tensor, noise: float = 0.05) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    m = codebooks.size(0)
    return codebooks[torch.arange(m), codes] + noise * torch.randn(codes.size(0), m, codebooks.size(2), generator=g)


def test_a_group_larger_than_the_one_token_alternatives_splits_completely():
    """M = 2, D = 4: one token gives 2 x 3 = 6 alternatives; 12 items on one set need two-token moves."""
    g = torch.Generator().manual_seed(1)
    codebooks = torch.randn(2, 4, 3, generator=g)
    codes = torch.zeros(12, 2, dtype=torch.long)
    new, moved = resolve_collisions(_latents_at(codebooks, codes), codebooks, codes)
    assert collision_stats(new) == (1.0, 1)
    assert moved == 11
    changed = (new != codes).sum(dim=1)
    assert int((changed == 1).sum()) == 6 and int((changed == 2).sum()) == 5  # one-token moves first


def test_small_groups_still_move_one_token_each():
    g = torch.Generator().manual_seed(2)
    codebooks = torch.randn(4, 16, 8, generator=g)
    codes = torch.randint(0, 16, (300, 4), generator=g)
    codes[100:110] = codes[0]  # a group of 11: one-token alternatives (60) suffice
    before, _ = collision_stats(codes)
    new, moved = resolve_collisions(_latents_at(codebooks, codes), codebooks, codes)
    assert before < 1.0 and collision_stats(new) == (1.0, 1)
    assert moved >= 10 and ((new != codes).sum(dim=1) <= 1).all()
    untouched = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
    single = untouched[2][untouched[1]] == 1
    assert torch.equal(new[single], codes[single])  # items without a collision keep their set


def test_mpq_steps_are_capped_on_large_catalogues_only():
    settings = TokenizerSettings()  # the defaults: 150 epochs, batches of 256, at most 4000 steps
    assert capped_epochs(settings, 1682) == 150  # ml-100k: 7 batches x 150 = 1050 steps, unchanged
    assert capped_epochs(settings, 20_000) == 50  # 79 batches per epoch
    assert capped_epochs(settings, 100_000) == 10  # 391 batches per epoch
    assert capped_epochs(settings, 10_000_000) == 1
    assert capped_epochs(TokenizerSettings(mpq_max_steps=0), 100_000) == 150


def test_negative_step_cap_is_one_clear_error():
    with pytest.raises(TokenizerConfigError, match="mpq_max_steps=-1 is invalid"):
        TokenizerSettings.from_config({"mpq_max_steps": -1})


def test_codebook_larger_than_the_catalogue_is_one_clear_error():
    with pytest.raises(TokenizerConfigError, match="codebook_size=64 is larger than the catalogue") as err:
        TokenizerSettings().check_catalogue(50)
    assert "\n" not in str(err.value)
