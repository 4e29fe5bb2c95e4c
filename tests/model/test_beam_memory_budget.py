"""Memory-budget chunking of full-sort evaluation, its bad inputs, and a 100k-item catalogue
searched within a stated memory bound."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tiny_models import build_tiny
from recbole_reg4rec.model.beam_search import BeamConfig, plan_chunks


def test_budget_chunks_give_the_scores_of_one_big_chunk(monkeypatch, workdir):
    model, _, test = build_tiny(monkeypatch, workdir, {"beam_chunk_users": None})
    model.eval()
    inter = next(iter(test))[0]
    n_users = inter.length
    with torch.no_grad():
        one_chunk = model.full_sort_predict(inter)
        assert model.beam_chunk_plan()[0] >= n_users  # the default budget holds every test user
        # the smallest budget that holds one user: one user per chunk, tiny (path, item) blocks
        cfg = BeamConfig(beam_size=model.beam_size, pool_factor=model.beam_pool_factor)
        sizes = (model.n_items, model.n_codebooks, max(model.codebook_sizes), cfg)
        model.beam_memory_mb = 0.01
        while True:
            try:
                plan_chunks(model.beam_memory_mb, *sizes)
                break
            except ValueError:
                model.beam_memory_mb *= 1.2
        users, _ = model.beam_chunk_plan()
        assert users < n_users
        chunked = model.full_sort_predict(inter)
        model.beam_memory_mb, model.beam_chunk_users = 512.0, 2  # the upper bound caps the chunk
        assert model.beam_chunk_plan()[0] == 2
        capped = model.full_sort_predict(inter)
    assert torch.isfinite(one_chunk[:, 1:]).all()
    # the encoder/decoder matmuls of a smaller batch may round differently in the last bits
    for other in (chunked, capped):
        torch.testing.assert_close(other, one_chunk, rtol=1e-5, atol=1e-4)
        assert torch.equal(other[:, 1:].topk(5).indices, one_chunk[:, 1:].topk(5).indices)


def test_chunk_plan_is_linear_in_the_catalogue():
    cfg = BeamConfig(beam_size=50)
    users = [plan_chunks(4096, n, 4, 64, cfg)[0] for n in (10_000, 100_000, 1_000_000)]
    assert users[0] > users[1] > users[2] >= 1
    small = plan_chunks(64, 100_000, 4, 64, cfg)  # 64 MB at 100k items: a few users
    assert 1 <= small[0] <= 10 and small[1] >= 100_000


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"beam_memory_mb": 0.01}, "beam_memory_mb=0.01 is too small to search one user"),
        ({"beam_size": 40, "topk": [5]}, "beam_size=40 is larger than the catalogue"),
        ({"beam_chunk_users": 0}, "beam_chunk_users=0 must be >= 1"),
    ],
)
def test_bad_beam_settings_fail_before_training_with_one_line(monkeypatch, workdir, extra, match):
    with pytest.raises(ValueError, match=match) as err:
        build_tiny(monkeypatch, workdir, extra)
    assert "\n" not in str(err.value)


SEARCH_100K = textwrap.dedent(
    """
    import resource, sys, time
    import torch
    sys.path.insert(0, {tests!r})
    from test_beam_candidates import random_step_fn
    from recbole_reg4rec.model.beam_search import BeamConfig, corp_beam_search
    from recbole_reg4rec.model.catalogue_index import CatalogueIndex
    torch.set_num_threads(1)
    n, users, sizes = 100_000, 16, (32, 32, 32, 32)
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([torch.tensor([list(sizes)]), torch.randint(0, 32, (n - 1, 4), generator=g)])
    index = CatalogueIndex(codes, sizes)
    step = random_step_fn(0, users, sizes)
    prior = torch.log_softmax(torch.randn(users, n, generator=g), 1)
    prior[:, 0] = float("-inf")
    cfg = BeamConfig(beam_size=50, reasoning_steps=4, fusion_weight=4.0, block_items=1 << 18)
    corp_beam_search(random_step_fn(0, 2, sizes), index, 2, cfg, prior[:2])  # builds the catalogue's group tables once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    result = corp_beam_search(step, index, users, cfg, prior)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reached = int(torch.isfinite(result.item_scores).sum())
    print((peak - before) / 1024, seconds, reached)
    """
)


def test_a_100k_item_catalogue_is_searched_within_a_memory_bound():
    """16 users, beam 50, 100k items: the dense masks alone would be 16 x 50 x 100k bytes = 80 MB
    per copy (several live at once); the grouped search's extra peak stays below 100 MB (measured
    about 30 MB; ru_maxrss of a fresh process, so nothing else runs in it)."""
    tests = str(Path(__file__).resolve().parent)  # test_beam_candidates.random_step_fn
    out = subprocess.run(
        [sys.executable, "-c", SEARCH_100K.format(tests=tests)], capture_output=True, text=True, timeout=120,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    extra_mb, seconds, reached = out.stdout.split()
    assert int(reached) >= 16 * 10  # every user gets items
    assert float(extra_mb) < 100, f"extra peak {extra_mb} MB"
