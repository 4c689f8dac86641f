"""A small audio classifier that tells whether generated audio sounds like its class.

AudioCraft scores conditional generation with a pretrained classifier's KL divergence;
audioflow trains its own instead, on the real train clips, so nothing is downloaded and
the score works for any labelled corpus. Features are the mean and standard deviation
over time of a log-mel spectrogram (what separates tones, sweeps, noise and voices);
a two-layer network maps them to the classes. It trains full-batch in about a second.

It judges the class, not the level: generated clips come out of a codec, which may play
them tens of dB quieter than the real clips and add its own noise floor. So every clip is
scaled to one RMS before its features (a gain leaves them unchanged), and :meth:`fit`
also trains on copies of the clips at a random gain over a random low noise floor
(:func:`augment_level_and_noise`); a caller that has the codec adds its reconstructions
of the train clips too (the LM's generate stage does). None of this sees which class a
sample was asked for, so it cannot favour the requested one.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

# Every clip is scaled to this RMS (-20 dBFS) before its log-mel: features ignore the level.
REFERENCE_RMS = 0.1
# Floor of the log-mel power at the reference level (some 55 dB under a white noise at
# REFERENCE_RMS): a codec's faint noise floor in the silences does not set the features.
MEL_FLOOR = 1e-5


def augment_level_and_noise(
    wav: torch.Tensor,
    generator: torch.Generator,
    gain_db: tuple[float, float] = (-40.0, 0.0),
    noise_dbfs: tuple[float, float] = (-90.0, -60.0),
) -> torch.Tensor:
    """Clips (B, C, T) at a random gain, plus white noise at a random absolute level.

    What a decoded clip may differ by from a real one: its level and a noise floor
    (the codec's), with no bearing on the class.

    Args:
        wav: clips.
        generator: the random draws (seeded: the same copies every time).
        gain_db: range of the gain applied to each clip, in dB.
        noise_dbfs: range of the RMS of the added noise, in dB re full scale.

    Returns:
        (B, C, T) augmented copies.
    """
    batch = wav.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, 1, 1, generator=generator)

    gain = 10 ** (uniform(*gain_db) / 20)
    noise = torch.randn(wav.shape, generator=generator) * 10 ** (uniform(*noise_dbfs) / 20)
    return wav * gain + noise


class MelStatsClassifier(nn.Module):
    """Log-mel statistics of level-normalised clips -> class logits.

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
        """(B, C, T) -> (B, 2 * n_mels) log-mel mean and std over time (channels mixed).

        Each clip is scaled to :data:`REFERENCE_RMS` first, so a gain changes nothing.
        """
        mono = wav.float().mean(1)  # (B, T)
        rms = mono.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-8)
        logmel = torch.log(self.mel(mono * (REFERENCE_RMS / rms)) + MEL_FLOOR)  # (B, M, frames)
        return torch.cat([logmel.mean(-1), logmel.std(-1)], dim=-1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.net((self.features(wav) - self.mean) / self.std)

    def fit(
        self,
        wav: torch.Tensor,
        targets: torch.Tensor,
        steps: int = 300,
        seed: int = 0,
        augment: int = 0,
    ) -> float:
        """Train on clips (B, C, T) with class indices (B,); deterministic for a seed.

        Args:
            augment: copies of the clips added, each through
                :func:`augment_level_and_noise` (0: the clips alone).

        Returns:
            The accuracy on the clips as given (not the copies).
        """
        generator = torch.Generator().manual_seed(seed)
        copies = [augment_level_and_noise(wav, generator) for _ in range(int(augment))]
        with torch.no_grad():
            given = self.features(wav)
            feats = torch.cat([given, *(self.features(c) for c in copies)])
            labels = targets.repeat(1 + int(augment))
            self.mean.copy_(feats.mean(0))
            self.std.copy_(feats.std(0).clamp(min=1e-3))
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        x = (feats - self.mean) / self.std
        self.train()
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(self.net(x), labels)
                loss.backward()
                opt.step()
        self.eval()
        with torch.no_grad():
            return float((self(wav).argmax(-1) == targets).float().mean())

    @torch.no_grad()
    def predict(self, wav: torch.Tensor) -> list[str]:
        """Class names of clips (B, C, T)."""
        return [self.labels[i] for i in self(wav).argmax(-1).tolist()]
