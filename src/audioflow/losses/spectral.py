"""Spectral reconstruction losses: multi-scale mel and multi-resolution STFT.

Waveform L1 alone ignores how audio is heard; comparing (log) spectra at several
resolutions penalises errors both in short transients (small windows) and in sustained
pitch (large windows).
"""

from __future__ import annotations

import warnings

import torch
import torchaudio
from torch import nn
from torch.nn import functional as F


def usable_n_mels(sample_rate: int, n_fft: int, n_mels: int) -> int:
    """Largest band count <= ``n_mels`` whose mel filters all cover a frequency bin.

    Small STFTs have coarse bins: too many mel bands leave some filters empty (all zero),
    which only adds constant terms to the loss and makes torchaudio warn.
    """
    for n in range(n_mels, 0, -1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fb = torchaudio.functional.melscale_fbanks(
                n_fft // 2 + 1, 0.0, sample_rate / 2, n, sample_rate
            )
        if bool((fb.max(dim=0).values > 0).all()):
            return n
    return 1


class MelSpectrogramL1(nn.Module):
    """L1 (+ weighted L2) between log-mel spectrograms at one resolution.

    Args:
        sample_rate: audio sample rate.
        n_fft: STFT and window size; hop is n_fft // 4.
        n_mels: mel bands.
        alpha: weight of the L2 term.
        floor: added before the log, so silence does not dominate.
    """

    def __init__(
        self, sample_rate: int, n_fft: int, n_mels: int, alpha: float = 1.0, floor: float = 1e-5
    ):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=n_fft // 4,
            n_mels=n_mels,
            f_min=0.0,
            f_max=sample_rate / 2,
            power=1.0,
            normalized=False,
            center=False,
        )
        self.alpha, self.floor = alpha, floor

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C, n_mels, frames)
        # log(mel + floor), as AudioCraft's mel loss: a clamp at the floor has no gradient
        # below it, so an output that grew quiet got no spectral pull back up and the
        # waveform L1 term shrank it to a constant.
        return (self.mel(x.float()) + self.floor).log()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mx, my = self.log_mel(x), self.log_mel(y)
        return F.l1_loss(mx, my) + self.alpha * F.mse_loss(mx, my)


class MultiScaleMelLoss(nn.Module):
    """Mean of :class:`MelSpectrogramL1` over n_fft = 2**i for i in [range_start, range_end).

    Args:
        sample_rate: audio sample rate.
        range_start: log2 of the smallest STFT size.
        range_end: log2 of the largest STFT size (excluded).
        n_mels: mel bands at the largest scales; small STFTs use fewer (see
            :func:`usable_n_mels`).
        alpha: weight of the L2 term.
        floor: added to the mel magnitudes before the log: how far below a loud bin an
            error still counts (see :class:`MelSpectrogramL1`).
    """

    def __init__(
        self,
        sample_rate: int,
        range_start: int = 6,
        range_end: int = 11,
        n_mels: int = 64,
        alpha: float = 1.0,
        floor: float = 1e-5,
    ):
        super().__init__()
        if range_end <= range_start:
            raise ValueError(f"range_end ({range_end}) must be > range_start ({range_start})")
        if floor <= 0:
            raise ValueError(f"floor={floor}: must be > 0")
        self.scales = nn.ModuleList(
            MelSpectrogramL1(
                sample_rate, 2**i, usable_n_mels(sample_rate, 2**i, n_mels), alpha, floor
            )
            for i in range(range_start, range_end)
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Loss between reconstruction ``x`` and target ``y`` (B, C, T)."""
        return sum(scale(x, y) for scale in self.scales) / len(self.scales)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions.

    Args:
        n_ffts: STFT sizes; hop is n_fft // 4 and window n_fft (Hann).
        eps: floor of the magnitudes.
    """

    def __init__(self, n_ffts: tuple[int, ...] = (512, 1024, 2048), eps: float = 1e-7):
        super().__init__()
        self.specs = nn.ModuleList(
            torchaudio.transforms.Spectrogram(n_fft=n, hop_length=n // 4, power=1.0, center=False)
            for n in n_ffts
        )
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros((), dtype=torch.float32)
        for spec in self.specs:
            # + eps rather than a clamp: a clamp gives no gradient to quiet bins
            sx = spec(x.float()) + self.eps
            sy = spec(y.float()) + self.eps
            convergence = torch.linalg.norm(sy - sx) / torch.linalg.norm(sy).clamp(min=self.eps)
            total = total + convergence + F.l1_loss(sx.log(), sy.log())
        return total / len(self.specs)
