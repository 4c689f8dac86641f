"""Reconstruction and adversarial losses."""

import torch

from audioflow.losses.adversarial import (
    feature_matching_loss,
    frozen,
    hinge_disc_loss,
    hinge_gen_loss,
)
from audioflow.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss, usable_n_mels
from audioflow.models.discriminator import MultiScaleSTFTDiscriminator


def tone(freq: float, sr: int = 16000, n: int = 8000) -> torch.Tensor:
    t = torch.arange(n) / sr
    return torch.sin(2 * torch.pi * freq * t).view(1, 1, -1)


def test_spectral_losses_are_zero_on_identity_and_grow_with_distance():
    for loss in (MultiScaleMelLoss(16000), MultiResolutionSTFTLoss((256, 512))):
        x = tone(440)
        assert loss(x, x).item() < 1e-5
        near, far = loss(tone(460), x).item(), loss(tone(2000), x).item()
        assert 0 < near < far


def test_mel_loss_gradient_flows_to_the_estimate():
    x = tone(440)
    est = (0.5 * x).requires_grad_(True)
    MultiScaleMelLoss(16000)(est, x).backward()
    assert est.grad.abs().sum() > 0


def test_small_ffts_use_fewer_mel_bands():
    assert usable_n_mels(16000, 64, 64) < usable_n_mels(16000, 1024, 64) == 64


def test_hinge_losses():
    high, low = [torch.full((2, 3), 2.0)], [torch.full((2, 3), -2.0)]
    assert hinge_disc_loss(high, low).item() == 0  # confident and right: no loss
    assert hinge_disc_loss(low, high).item() == 6  # 3 + 3
    assert hinge_gen_loss(high).item() == 0 and hinge_gen_loss(low).item() == 3


def test_feature_matching_zero_on_identical_features():
    f = [[torch.randn(2, 4, 5, 5), torch.randn(2, 4, 3, 3)]]
    assert feature_matching_loss(f, f).item() == 0
    g = [[t + 1 for t in f[0]]]
    assert feature_matching_loss(f, g).item() > 0


def test_frozen_discriminator_gets_no_gradient_but_input_does():
    disc = MultiScaleSTFTDiscriminator(channels=1, filters=4, n_ffts=(128,))
    x = torch.randn(1, 1, 2000, requires_grad=True)
    with frozen(disc):
        logits, _ = disc(x)
    hinge_gen_loss(logits).backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.requires_grad for p in disc.parameters())  # restored afterwards


def test_mel_loss_pulls_a_quiet_estimate_back_up():
    """An estimate far below the floor still gets a gradient (a clamp at the floor gave
    none, so a reconstruction that grew quiet stayed quiet)."""
    from audioflow.losses.spectral import MultiScaleMelLoss

    torch.manual_seed(0)
    target = torch.randn(1, 1, 4000) * 0.3
    estimate = (torch.randn(1, 1, 4000) * 1e-7).requires_grad_(True)
    MultiScaleMelLoss(16000, range_start=6, range_end=9)(estimate, target).backward()
    assert estimate.grad.abs().max() > 0


def test_sisnr_term_ignores_scale_and_silent_targets():
    from audioflow.losses.codec import ReconstructionLoss

    torch.manual_seed(0)
    target = torch.randn(2, 1, 1600) * 0.3
    target[1] = 0.0  # a silent item: its SI-SNR is meaningless
    loss = ReconstructionLoss(16000, {"sisnr_loss": 1.0})
    total, terms = loss(0.01 * target, target, torch.zeros(()))
    assert total.item() < -60  # a perfect shape at any scale; the silent item left out
