"""Hinge adversarial losses and feature matching for multi-scale discriminators.

The discriminators return one logit map and a list of feature maps per scale; the
losses below average over scales. The generator side never updates the discriminator:
call it under :func:`frozen` so that the generator loss puts no gradient on the
discriminator's parameters (its optimizer steps on ``disc_loss`` only).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` without recording gradients for its parameters (inputs still get them)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def hinge_disc_loss(
    logits_real: list[torch.Tensor], logits_fake: list[torch.Tensor]
) -> torch.Tensor:
    """mean over scales of E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(logits_real, logits_fake)]
    return torch.stack(losses).mean()


def hinge_gen_loss(logits_fake: list[torch.Tensor]) -> torch.Tensor:
    """mean over scales of E[relu(1 - D(fake))]."""
    return torch.stack([F.relu(1 - f).mean() for f in logits_fake]).mean()


def feature_matching_loss(
    fmaps_real: list[list[torch.Tensor]], fmaps_fake: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between feature maps of real and fake, each normalised by the real map's mean |.|."""
    losses = []
    for scale_real, scale_fake in zip(fmaps_real, fmaps_fake):
        for real, fake in zip(scale_real, scale_fake):
            real = real.detach()
            losses.append(F.l1_loss(fake, real) / real.abs().mean().clamp(min=1e-8))
    return torch.stack(losses).mean()
