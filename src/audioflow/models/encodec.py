"""EncodecModel: encoder -> residual vector quantizer -> decoder.

The model owns three sub-modules named ``encoder``, ``quantizer`` and ``decoder``: the
OptimScheduler configs name them in ``updated_modules``.
"""

from __future__ import annotations

import torch
from torch import nn

from audioflow.models.quantizer import QuantizedResult, ResidualVectorQuantizer


class EncodecModel(nn.Module):
    """A neural audio codec.

    Args:
        encoder: waveform (B, C, T) -> latent (B, D, T / hop); must expose ``hop_length``.
        quantizer: residual vector quantizer over the latent.
        decoder: latent -> waveform.
        sample_rate: audio sample rate in Hz.
        channels: audio channels.
    """

    def __init__(
        self,
        encoder: nn.Module,
        quantizer: ResidualVectorQuantizer,
        decoder: nn.Module,
        sample_rate: int,
        channels: int,
    ):
        super().__init__()
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder
        self.sample_rate, self.channels = sample_rate, channels
        self.hop_length = int(encoder.hop_length)

    @property
    def frame_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.n_q

    @property
    def total_codebooks(self) -> int:
        return self.quantizer.max_n_q

    @property
    def cardinality(self) -> int:
        return self.quantizer.bins

    def set_num_codebooks(self, n: int) -> None:
        """Choose how many codebooks encode/forward use (the bandwidth) outside training."""
        self.quantizer.set_num_codebooks(n)

    def bandwidths(self) -> list[float]:
        """kbps for 1..total_codebooks codebooks."""
        return [
            self.quantizer.bandwidth(n, self.frame_rate) for n in range(1, self.total_codebooks + 1)
        ]

    def forward(self, x: torch.Tensor) -> QuantizedResult:
        """Reconstruct ``x`` (B, C, T); the result's ``x`` has exactly T samples."""
        length = x.shape[-1]
        latent = self.encoder(x)
        q = self.quantizer(latent, self.frame_rate)
        q.x = self.decoder(q.x)[..., :length]
        return q

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, counts: list[int]) -> dict[int, torch.Tensor]:
        """``forward(x).x`` with each number of codebooks in ``counts``, from one encoder
        pass: the first n codes of a residual quantizer do not depend on those after them.
        Leaves the model at the last count."""
        length = x.shape[-1]
        latent = self.encoder(x)
        out = {}
        for n in counts:
            self.set_num_codebooks(n)
            out[n] = self.decoder(self.quantizer(latent, self.frame_rate).x)[..., :length]
        return out

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, C, T) -> codes (B, K, ceil(T / hop)) with the current bandwidth."""
        return self.quantizer.encode(self.encoder(x))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Codes (B, K, F) -> waveform (B, C, F * hop), cropped to ``length`` if given."""
        wav = self.decoder(self.quantizer.decode(codes))
        return wav if length is None else wav[..., :length]
