"""TokenEmbedding.item_embeddings (one embedding_bag) against the plain sum of token embeddings."""

import torch

from recbole_reg4rec.model.layers import TokenEmbedding


def test_item_table_is_the_sum_of_real_token_embeddings_with_the_same_gradient():
    torch.manual_seed(0)
    sizes = (4, 6, 3)
    emb = TokenEmbedding(sizes, 8)
    codes = torch.stack([torch.randint(0, d + 1, (50,)) for d in sizes], dim=1)  # d = the pad code
    codes[0] = torch.tensor(sizes)  # an item of pad codes only (RecBole's padding item)
    weights = torch.randn(50, 8)

    got = emb.item_embeddings(codes)
    (got * weights).sum().backward()
    grad = emb.embedding.weight.grad.clone()
    emb.embedding.weight.grad = None

    rows = emb.embedding(codes + emb.offsets)  # [N, M, H]
    ref = (rows * (codes < emb.sizes).unsqueeze(-1)).sum(dim=1)
    (ref * weights).sum().backward()

    torch.testing.assert_close(got, ref)
    assert torch.equal(got[0], torch.zeros(8))
    torch.testing.assert_close(grad, emb.embedding.weight.grad)
    pad_rows = emb.offsets + torch.tensor(sizes)
    assert torch.equal(grad[pad_rows], torch.zeros(3, 8))  # pad rows learn nothing
