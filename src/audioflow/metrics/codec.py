"""Metrics of a codec's reconstruction: SI-SNR, mel distance, bitrate."""

from __future__ import annotations

import math

import torch
import torchaudio


def si_snr_items(
    estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB of each batch item (higher is better).

    Args:
        estimate: (B, C, T) reconstruction.
        reference: (B, C, T) original (channels are flattened together).
        eps: floor that keeps silent references finite.

    Returns:
        (B,) tensor of dB values.
    """
    est = estimate.float().flatten(1)
    ref = reference.float().flatten(1)
    est = est - est.mean(dim=1, keepdim=True)
    ref = ref - ref.mean(dim=1, keepdim=True)
    # project the estimate on the reference: the part explained by scaling the original
    scale = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    ratio = (target.pow(2).sum(1) + eps) / (noise.pow(2).sum(1) + eps)
    return 10 * torch.log10(ratio)


def audible(reference: torch.Tensor, threshold: float = 1e-6) -> torch.Tensor:
    """(B,) mask of items whose mean power exceeds ``threshold`` (about -60 dBFS).

    SI-SNR of a silent reference is meaningless (about -100 dB whatever the estimate):
    such items would swamp a batch mean, so metrics leave them out.
    """
    return reference.float().flatten(1).pow(2).mean(1) > threshold


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean SI-SNR in dB over the audible items of a batch (NaN when all are silent).

    Args:
        estimate: (B, C, T) reconstruction.
        reference: (B, C, T) original.
        eps: see :func:`si_snr_items`.

    Returns:
        Scalar tensor.
    """
    values = si_snr_items(estimate, reference, eps)
    mask = audible(reference)
    return values[mask].mean() if bool(mask.any()) else values.new_tensor(float("nan"))


class MelDistance(torch.nn.Module):
    """Mean absolute difference of log-mel spectrograms (lower is better).

    Args:
        sample_rate: audio sample rate.
        n_fft: STFT size; hop is n_fft // 4.
        n_mels: mel bands.
    """

    def __init__(self, sample_rate: int, n_fft: int = 1024, n_mels: int = 64):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels, power=1.0
        )

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        log = lambda x: self.mel(x.float()).clamp(min=1e-5).log()  # noqa: E731
        return (log(estimate) - log(reference)).abs().mean()


def bitrate_kbps(num_codebooks: int, cardinality: int, frame_rate: float) -> float:
    """Bitrate of a code stream: codebooks x log2(cardinality) bits per frame, in kbps."""
    return num_codebooks * math.log2(cardinality) * frame_rate / 1000
