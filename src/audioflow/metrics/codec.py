"""Metrics of a codec's reconstruction: SI-SNR, mel distance, bitrate."""

from __future__ import annotations

import math

import torch
import torchaudio


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB, averaged over the batch (higher is better).

    Args:
        estimate: (B, C, T) reconstruction.
        reference: (B, C, T) original.
        eps: floor that keeps silent references finite.

    Returns:
        Scalar tensor: mean over batch items (channels are flattened together).
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
    return (10 * torch.log10(ratio)).mean()


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
