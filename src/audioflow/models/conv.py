"""1D convolutions that pad themselves so that any input length works, causal or not.

A codec must return exactly as many samples as it was given, whatever the length: the
convolutions here pad the input so that the last frame is complete, and the transposed
convolutions trim what the padding added back. With ``causal=True`` all the padding goes
on the left, so an output sample never depends on future input (streamable).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

NORMS = ("none", "weight_norm")


def _apply_norm(module: nn.Module, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: use one of {', '.join(NORMS)}")
    return weight_norm(module) if norm == "weight_norm" else module


def extra_padding(length: int, kernel_size: int, stride: int, padding_total: int) -> int:
    """Right padding that makes the last convolution window complete.

    Args:
        length: input length in samples.
        kernel_size: convolution kernel size (dilation included).
        stride: convolution stride.
        padding_total: padding already planned on both sides together.

    Returns:
        The number of extra samples to add on the right (0 when the frames fit exactly).
    """
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last dimension; reflect padding falls back to zeros on inputs too short."""
    length = x.shape[-1]
    if mode == "reflect" and length <= max(left, right):
        # reflect needs more samples than the pad width: zero-extend first, then crop.
        extra = max(left, right) - length + 1
        x = F.pad(x, (0, extra))
        return F.pad(x, (left, right), mode)[..., : length + left + right]
    return F.pad(x, (left, right), mode)


class StreamableConv1d(nn.Module):
    """Conv1d with automatic padding: output length = ceil(input length / stride).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size.
        stride: stride.
        dilation: dilation.
        causal: pad on the left only.
        norm: "weight_norm" or "none".
        pad_mode: torch padding mode ("reflect", "constant", "replicate").
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
        pad_mode: str = "reflect",
    ):
        super().__init__()
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        self.conv = _apply_norm(conv, norm)
        self.causal = causal
        self.pad_mode = pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T/stride)
        conv = self.conv
        kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
        stride = conv.stride[0]
        padding_total = kernel - stride
        extra = extra_padding(x.shape[-1], kernel, stride, padding_total)
        if self.causal:
            x = pad1d(x, padding_total, extra, self.pad_mode)
        else:
            right = padding_total // 2
            x = pad1d(x, padding_total - right, right + extra, self.pad_mode)
        return self.conv(x)


class StreamableConvTranspose1d(nn.Module):
    """ConvTranspose1d that trims its padding: output length = input length * stride.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel size.
        stride: stride (the upsampling ratio).
        causal: trim on the right only, so no output depends on future frames.
        norm: "weight_norm" or "none".
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        causal: bool = False,
        norm: str = "weight_norm",
    ):
        super().__init__()
        convtr = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        self.convtr = _apply_norm(convtr, norm)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, C', T*stride)
        convtr = self.convtr
        padding_total = convtr.kernel_size[0] - convtr.stride[0]
        y = self.convtr(x)
        right = padding_total if self.causal else padding_total // 2
        left = padding_total - right
        return y[..., left : y.shape[-1] - right]
