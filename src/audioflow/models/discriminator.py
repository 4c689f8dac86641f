"""Multi-scale STFT discriminator (MS-STFTD), the adversary of EnCodec.

Each sub-discriminator looks at a complex STFT (real and imaginary parts as two input
channels per audio channel) at one resolution through 2D convolutions dilated along time;
it returns its logits and the feature maps used by the feature-matching loss.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class STFTDiscriminator(nn.Module):
    """One resolution.

    Args:
        channels: audio channels.
        filters: channels of the 2D convolutions.
        n_fft: STFT size (window length; hop is n_fft // 4).
        dilations: time dilations of the middle convolutions.
    """

    def __init__(self, channels: int, filters: int, n_fft: int, dilations: tuple[int, ...]):
        super().__init__()
        self.spec = torchaudio.transforms.Spectrogram(
            n_fft=n_fft,
            hop_length=n_fft // 4,
            win_length=n_fft,
            power=None,
            normalized=True,
            center=False,
        )
        convs = [weight_norm(nn.Conv2d(2 * channels, filters, (3, 9), padding=(1, 4)))]
        for d in dilations:
            convs.append(
                weight_norm(
                    nn.Conv2d(
                        filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4)
                    )
                )
            )
        convs.append(weight_norm(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C, T) -> (logits (B, 1, T', F'), feature maps)."""
        z = self.spec(x.float())  # (B, C, F, T') complex
        z = torch.cat([z.real, z.imag], dim=1).transpose(2, 3)  # (B, 2C, T', F)
        fmaps = []
        for conv in self.convs:
            z = self.act(conv(z))
            fmaps.append(z)
        return self.post(z), fmaps


class MultiScaleSTFTDiscriminator(nn.Module):
    """Several :class:`STFTDiscriminator` at different STFT sizes.

    Args:
        channels: audio channels.
        filters: channels of each sub-discriminator.
        n_ffts: one STFT size per sub-discriminator.
        dilations: time dilations shared by the sub-discriminators.
    """

    def __init__(
        self,
        channels: int = 1,
        filters: int = 32,
        n_ffts: tuple[int, ...] = (1024, 2048, 512),
        dilations: tuple[int, ...] = (1, 2, 4),
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(channels, filters, n, tuple(dilations)) for n in n_ffts
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Returns (logits per scale, feature maps per scale)."""
        logits, fmaps = [], []
        for disc in self.discriminators:
            logit, fmap = disc(x)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps
