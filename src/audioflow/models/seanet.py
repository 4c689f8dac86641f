"""SEANet convolutional encoder and decoder, the backbone of EnCodec-style codecs.

The encoder maps a waveform (B, C, T) to latent frames (B, D, T / hop) where
hop = prod(ratios); the decoder mirrors it. Each resolution has residual blocks of
dilated convolutions (dilation_base ** j), then a strided convolution; an optional LSTM
at the bottleneck models longer context.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from audioflow.models.conv import StreamableConv1d, StreamableConvTranspose1d


class ResidualBlock(nn.Module):
    """ELU -> dilated conv -> ELU -> 1x1 conv, added to the input."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        dilation: int,
        compress: int,
        causal: bool,
        norm: str,
        pad_mode: str,
    ):
        super().__init__()
        hidden = max(dim // compress, 1)
        self.block = nn.Sequential(
            nn.ELU(),
            StreamableConv1d(
                dim,
                hidden,
                kernel_size,
                dilation=dilation,
                causal=causal,
                norm=norm,
                pad_mode=pad_mode,
            ),
            nn.ELU(),
            StreamableConv1d(hidden, dim, 1, causal=causal, norm=norm, pad_mode=pad_mode),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class BottleneckLSTM(nn.Module):
    """LSTM over time with a skip connection, on (B, C, T) tensors."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.permute(2, 0, 1)  # (T, B, C): nn.LSTM is time-first
        y, _ = self.lstm(y)
        return x + y.permute(1, 2, 0)


class SEANetEncoder(nn.Module):
    """Waveform -> latent frames.

    Args:
        channels: audio channels.
        dimension: latent dimension D.
        n_filters: channels of the first convolution; doubled at every downsampling.
        n_residual_layers: residual blocks per resolution.
        ratios: upsampling ratios, decoder order (the encoder downsamples by them reversed).
        kernel_size: first convolution kernel size.
        last_kernel_size: last convolution kernel size.
        residual_kernel_size: residual blocks' kernel size.
        dilation_base: dilation grows as dilation_base ** j inside a resolution.
        compress: channel reduction inside residual blocks.
        lstm: number of LSTM layers at the bottleneck (0 = none).
        causal: causal convolutions (streamable).
        norm: "weight_norm" or "none".
        pad_mode: padding mode of the non-causal side.
    """

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: tuple[int, ...] = (8, 5, 4, 2),
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        compress: int = 2,
        lstm: int = 0,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ):
        super().__init__()
        self.ratios = list(reversed(ratios))
        self.hop_length = math.prod(ratios)
        conv = {"causal": causal, "norm": norm, "pad_mode": pad_mode}
        mult = 1
        layers: list[nn.Module] = [StreamableConv1d(channels, n_filters, kernel_size, **conv)]
        for ratio in self.ratios:
            dim = mult * n_filters
            for j in range(n_residual_layers):
                layers.append(
                    ResidualBlock(dim, residual_kernel_size, dilation_base**j, compress, **conv)
                )
            # kernel 2*ratio with stride ratio: overlapping windows, no aliasing gaps
            layers += [nn.ELU(), StreamableConv1d(dim, dim * 2, ratio * 2, stride=ratio, **conv)]
            mult *= 2
        if lstm:
            layers.append(BottleneckLSTM(mult * n_filters, lstm))
        layers += [
            nn.ELU(),
            StreamableConv1d(mult * n_filters, dimension, last_kernel_size, **conv),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, D, T/hop)
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latent frames -> waveform; mirrors :class:`SEANetEncoder` (same arguments)."""

    def __init__(
        self,
        channels: int = 1,
        dimension: int = 128,
        n_filters: int = 32,
        n_residual_layers: int = 1,
        ratios: tuple[int, ...] = (8, 5, 4, 2),
        kernel_size: int = 7,
        last_kernel_size: int = 7,
        residual_kernel_size: int = 3,
        dilation_base: int = 2,
        compress: int = 2,
        lstm: int = 0,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ):
        super().__init__()
        self.ratios = list(ratios)
        self.hop_length = math.prod(ratios)
        conv = {"causal": causal, "norm": norm, "pad_mode": pad_mode}
        mult = 2 ** len(self.ratios)
        layers: list[nn.Module] = [
            StreamableConv1d(dimension, mult * n_filters, kernel_size, **conv)
        ]
        if lstm:
            layers.append(BottleneckLSTM(mult * n_filters, lstm))
        for ratio in self.ratios:
            dim = mult * n_filters
            layers += [
                nn.ELU(),
                StreamableConvTranspose1d(
                    dim, dim // 2, ratio * 2, stride=ratio, causal=causal, norm=norm
                ),
            ]
            for j in range(n_residual_layers):
                layers.append(
                    ResidualBlock(
                        dim // 2, residual_kernel_size, dilation_base**j, compress, **conv
                    )
                )
            mult //= 2
        layers += [nn.ELU(), StreamableConv1d(n_filters, channels, last_kernel_size, **conv)]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T/hop) -> (B, C, T)
        return self.model(z)
