"""The one update function: NaN policy, averaging, clipping, ft_factor, grad norm."""

import pytest
import torch

from audioflow.optim.update import NO_GRAD, NONFINITE, UPDATED, apply_update


def _step(opt):
    return lambda: opt.step()


def test_nonfinite_gradient_of_any_dtype_or_layout_skips_the_step():
    dense = torch.nn.Parameter(torch.ones(3))
    half = torch.nn.Parameter(torch.ones(2, dtype=torch.bfloat16))
    opt = torch.optim.SGD([dense, half], lr=1.0)
    dense.grad, half.grad = torch.ones(3), torch.tensor([1.0, float("inf")], dtype=torch.bfloat16)
    outcome, norm = apply_update(opt, [dense, half], step=_step(opt))
    assert outcome == NONFINITE and not torch.isfinite(norm)
    assert torch.equal(dense, torch.ones(3)) and dense.grad is None  # nothing leaks
    emb = torch.nn.Embedding(5, 3, sparse=True)
    sparse_opt = torch.optim.SGD(emb.parameters(), lr=1.0)
    (emb(torch.tensor([1])) * float("nan")).sum().backward()
    assert apply_update(sparse_opt, list(emb.parameters()), step=_step(sparse_opt))[0] == NONFINITE
    emb(torch.tensor([1, 2])).sum().backward()
    assert apply_update(sparse_opt, list(emb.parameters()), step=_step(sparse_opt))[0] == UPDATED


def test_grad_scale_clip_and_lr_scale_and_the_reported_norm():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    assert apply_update(opt, [p], step=_step(opt)) == (NO_GRAD, None)
    p.grad = torch.tensor([6.0, 8.0])  # summed over 2 micro-steps: mean (3, 4), norm 5
    outcome, norm = apply_update(
        opt, [p], step=_step(opt), grad_scale=0.5, max_norm=1.0, lr_scale=0.1
    )
    assert outcome == UPDATED and float(norm) == pytest.approx(5.0)  # before clipping
    torch.testing.assert_close(p.detach(), torch.tensor([-0.06, -0.08]))  # clipped to 1, lr 0.1
    assert opt.param_groups[0]["lr"] == 1.0  # the schedule's own LR is left as it was
