"""One optimizer update: unscale, clip, check, step, clear. Every update in audioflow is this.

Both ways of training go through :func:`apply_update`: an OptimScheduler at the end of its
accumulation window, and an AudioCraft-style optimizer built with
:func:`audioflow.optim.build_optimizer` when the solver's ``run_step`` calls
``self.optimizer.step()``. The NaN policy lives here: an update whose gradient norm is not
finite is skipped (gradients dropped, optimizer state and LR clock untouched).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .errors import OptimConfigError

# Outcomes of one optimizer's update.
UPDATED = "updated"
NONFINITE = "nonfinite"
NO_GRAD = "no_grad"


def check_ft_factor(value) -> float:
    """``optim.ft_factor`` as a float.

    Raises:
        OptimConfigError: not a number > 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise OptimConfigError(f"optim.ft_factor={value!r}: must be a number > 0")
    return float(value)


@contextmanager
def scaled_lrs(optimizer: torch.optim.Optimizer, factor: float):
    """Step with every group's LR times ``factor``, then put the LRs back.

    ``ft_factor`` is applied this way to optimizers whose LR a torch LRScheduler (or the
    user) sets: the value in ``param_groups`` stays the schedule's own, so nothing that
    recomputes it needs to know about the factor.
    """
    if factor == 1.0:
        yield
        return
    groups = optimizer.param_groups
    saved = [g["lr"].clone() if torch.is_tensor(g["lr"]) else g["lr"] for g in groups]
    for group in groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].mul_(factor)  # in place: a captured graph may hold the tensor
        else:
            group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(groups, saved, strict=True):
            if torch.is_tensor(lr):
                group["lr"].copy_(lr)
            else:
                group["lr"] = lr


def apply_update(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    *,
    step: Callable[[], object],
    scaler: torch.amp.GradScaler | None = None,
    max_norm: float = 0.0,
    norm_type: float = 2.0,
    grad_scale: float = 1.0,
    lr_scale: float = 1.0,
) -> tuple[str, torch.Tensor | None]:
    """Unscale (fp16), average (accumulation), clip, check and step one optimizer.

    Args:
        optimizer: the torch optimizer over ``params`` (the scaler unscales it).
        params: the parameters it updates.
        step: runs the optimizer's own step (called at most once).
        scaler: the fp16 GradScaler the gradients were scaled with, or None.
        max_norm: clip the gradient norm to this value; 0 disables clipping.
        norm_type: the p of the p-norm (clipping and the reported norm).
        grad_scale: multiplies the gradients first (1 / accum_grad for summed micro-steps).
        lr_scale: LR multiplier for this step (``optim.ft_factor``).

    Returns:
        ``(outcome, grad_norm)``: ``"updated"``; ``"nonfinite"`` (the update was skipped);
        ``"no_grad"`` (no parameter had a gradient, nothing done, norm None). The norm is
        the pre-clipping one, a 0-dim tensor on the parameters' device.
    """
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return NO_GRAD, None
    if scaler is not None:
        scaler.unscale_(optimizer)  # its own gradients only, before clipping them
    if grad_scale != 1.0:
        for p in with_grad:
            p.grad.mul_(grad_scale)
    if any(p.grad.is_sparse for p in with_grad):
        norm = _sparse_aware_norm([p.grad for p in with_grad], norm_type)
        if max_norm > 0 and bool(torch.isfinite(norm)):
            coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
            for p in with_grad:
                p.grad.mul_(coef.to(p.grad.device))
    elif max_norm > 0:
        norm = nn.utils.clip_grad_norm_(with_grad, max_norm, norm_type)
    else:
        norm = nn.utils.get_total_norm([p.grad for p in with_grad], norm_type)
    if bool(torch.isfinite(norm)):  # one host read per update: the NaN policy needs it
        with scaled_lrs(optimizer, lr_scale):
            step()
        outcome = UPDATED
    else:
        outcome = NONFINITE
    for p in with_grad:
        p.grad = None
    return outcome, norm.detach()


def _sparse_aware_norm(grads: list[torch.Tensor], norm_type: float) -> torch.Tensor:
    """The total p-norm when some gradients are sparse (torch's helpers take dense only)."""
    values = [g.coalesce().values() if g.is_sparse else g for g in grads]
    norms = [torch.linalg.vector_norm(v.float(), norm_type).cpu() for v in values]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)
