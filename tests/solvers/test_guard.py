"""The finite-gradient check behind the NaN policy of AudioCraft-style solvers."""

import torch

from audioflow.solvers.base import _all_finite


def test_all_finite_on_dense_mixed_dtypes_and_sparse_gradients():
    assert _all_finite([torch.ones(3), torch.ones(2, dtype=torch.bfloat16)], True)
    assert not _all_finite([torch.ones(3), torch.tensor([float("nan")])], True)
    assert not _all_finite([torch.tensor([float("inf")], dtype=torch.bfloat16)], False)
    emb = torch.nn.Embedding(5, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    assert _all_finite([emb.weight.grad], True)
    (emb(torch.tensor([1])) * float("nan")).sum().backward()
    assert not _all_finite([emb.weight.grad], True)
