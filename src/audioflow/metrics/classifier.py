"""A small audio classifier that tells whether generated audio sounds like its class.

AudioCraft scores conditional generation with a pretrained classifier's KL divergence;
audioflow trains its own instead, on the real train clips, so nothing is downloaded and
the score works for any labelled corpus. Features are the mean and standard deviation
over time of a log-mel spectrogram (what separates tones, sweeps, noise and voices);
a two-layer network maps them to the classes. It trains full-batch in about a second.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class MelStatsClassifier(nn.Module):
    """Log-mel statistics -> class logits.

    Args:
        sample_rate: audio rate in Hz.
        labels: class names (output order).
        n_mels: mel bands.
        hidden: hidden units.
    """

    def __init__(self, sample_rate: int, labels: list[str], n_mels: int = 48, hidden: int = 64):
        super().__init__()
        self.labels = list(labels)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=512, hop_length=256, n_mels=n_mels
        )
        self.net = nn.Sequential(
            nn.Linear(2 * n_mels, hidden), nn.GELU(), nn.Linear(hidden, len(labels))
        )
        # feature standardisation, fitted on the train clips
        self.register_buffer("mean", torch.zeros(2 * n_mels))
        self.register_buffer("std", torch.ones(2 * n_mels))

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, 2 * n_mels) log-mel mean and std over time (channels mixed)."""
        logmel = torch.log(self.mel(wav.mean(1)) + 1e-5)  # (B, M, frames)
        return torch.cat([logmel.mean(-1), logmel.std(-1)], dim=-1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.net((self.features(wav) - self.mean) / self.std)

    def fit(self, wav: torch.Tensor, targets: torch.Tensor, steps: int = 300, seed: int = 0):
        """Train on clips (B, C, T) with class indices (B,); deterministic for a seed.

        Returns:
            The train accuracy.
        """
        with torch.no_grad():
            feats = self.features(wav)
            self.mean.copy_(feats.mean(0))
            self.std.copy_(feats.std(0).clamp(min=1e-3))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        x = (feats - self.mean) / self.std
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(self.net(x), targets)
                loss.backward()
                opt.step()
        self.eval()
        with torch.no_grad():
            return float((self.net(x).argmax(-1) == targets).float().mean())

    @torch.no_grad()
    def predict(self, wav: torch.Tensor) -> list[str]:
        """Class names of clips (B, C, T)."""
        return [self.labels[i] for i in self(wav).argmax(-1).tolist()]
