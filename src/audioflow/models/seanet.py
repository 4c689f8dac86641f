"""SEANet convolutional encoder and decoder, the backbone of EnCodec-style codecs.

The encoder maps a waveform (B, C, T) to latent frames (B, D, T / hop) where
hop = prod(ratios); the decoder mirrors it. Each resolution has residual blocks of
dilated convolutions (dilation_base ** j), then a strided convolution; an optional LSTM
at the bottleneck models longer context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class SEANetParams:
    """The arguments of :class:`SEANetEncoder` and :class:`SEANetDecoder` (the same for both).

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

    channels: int = 1
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm: int = 0
    causal: bool = False
    norm: str = "weight_norm"
    pad_mode: str = "reflect"

    @property
    def conv(self) -> dict:
        """Keyword arguments of every :class:`StreamableConv1d`."""
        return {"causal": self.causal, "norm": self.norm, "pad_mode": self.pad_mode}

    def residual_blocks(self, dim: int) -> list[nn.Module]:
        """The residual blocks of one resolution with ``dim`` channels."""
        return [
            ResidualBlock(
                dim, self.residual_kernel_size, self.dilation_base**j, self.compress, **self.conv
            )
            for j in range(self.n_residual_layers)
        ]


class _SEANet(nn.Module):
    """Takes the :class:`SEANetParams` arguments; a subclass lays out the layers."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        # The dataclass checks the arguments as a plain signature would (names, defaults,
        # positions), so the encoder and the decoder declare them once.
        params = SEANetParams(*args, **kwargs)
        self.hop_length = math.prod(params.ratios)
        self.model = nn.Sequential(*self._layers(params))

    def _layers(self, p: SEANetParams) -> list[nn.Module]:
        raise NotImplementedError


class SEANetEncoder(_SEANet):
    """Waveform -> latent frames; takes the arguments of :class:`SEANetParams`."""

    def _layers(self, p: SEANetParams) -> list[nn.Module]:
        self.ratios = list(reversed(p.ratios))
        mult = 1
        layers: list[nn.Module] = [
            StreamableConv1d(p.channels, p.n_filters, p.kernel_size, **p.conv)
        ]
        for ratio in self.ratios:
            dim = mult * p.n_filters
            layers += p.residual_blocks(dim)
            # kernel 2*ratio with stride ratio: overlapping windows, no aliasing gaps
            layers += [nn.ELU(), StreamableConv1d(dim, dim * 2, ratio * 2, stride=ratio, **p.conv)]
            mult *= 2
        if p.lstm:
            layers.append(BottleneckLSTM(mult * p.n_filters, p.lstm))
        layers += [
            nn.ELU(),
            StreamableConv1d(mult * p.n_filters, p.dimension, p.last_kernel_size, **p.conv),
        ]
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, D, T/hop)
        return self.model(x)


class SEANetDecoder(_SEANet):
    """Latent frames -> waveform; mirrors :class:`SEANetEncoder` (same arguments)."""

    def _layers(self, p: SEANetParams) -> list[nn.Module]:
        self.ratios = list(p.ratios)
        mult = 2 ** len(self.ratios)
        layers: list[nn.Module] = [
            StreamableConv1d(p.dimension, mult * p.n_filters, p.kernel_size, **p.conv)
        ]
        if p.lstm:
            layers.append(BottleneckLSTM(mult * p.n_filters, p.lstm))
        for ratio in self.ratios:
            dim = mult * p.n_filters
            layers += [
                nn.ELU(),
                StreamableConvTranspose1d(
                    dim, dim // 2, ratio * 2, stride=ratio, causal=p.causal, norm=p.norm
                ),
            ]
            layers += p.residual_blocks(dim // 2)
            mult //= 2
        layers += [
            nn.ELU(),
            StreamableConv1d(p.n_filters, p.channels, p.last_kernel_size, **p.conv),
        ]
        return layers

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, D, T/hop) -> (B, C, T)
        return self.model(z)
