"""A CTC speech recognizer: log-mel features, SpecAugment, a convolutional front end, a
Conformer (or Transformer) encoder and a linear CTC head; plain arguments only.

Shapes: audio (B, T) at ``sample_rate`` with ``lengths`` (B,) in samples -> log-mel
(B, F, n_mels) at ``hop_ms`` -> front end (B, F', dim) with F' = F / prod(strides) ->
encoder -> log-probabilities (B, F', vocab). An optional auxiliary CTC head reads the
front end's output (an intermediate CTC loss); it has its own parameters so that a second
OptimScheduler can train it alone (``updated_modules: [aux_head]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn


class LogMel(nn.Module):
    """Log-mel filterbank features, normalized per utterance and mel band.

    Args:
        sample_rate: audio rate.
        n_mels: mel bands.
        win_ms: analysis window (ms).
        hop_ms: hop between frames (ms).
    """

    def __init__(self, sample_rate: int, n_mels: int = 80, win_ms: float = 25, hop_ms: float = 10):
        super().__init__()
        self.hop = int(sample_rate * hop_ms / 1000)
        win = int(sample_rate * win_ms / 1000)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=1 << (win - 1).bit_length(), win_length=win, hop_length=self.hop,
            n_mels=n_mels, center=True,
        )  # fmt: skip

    def frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of audio of ``lengths`` samples (center=True adds one)."""
        return lengths // self.hop + 1

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor):
        """(B, T), (B,) -> features (B, F, n_mels), frame lengths (B,)."""
        with torch.autocast(wav.device.type, enabled=False):
            feats = torch.log(self.mel(wav.float()) + 1e-6).transpose(1, 2)  # (B, F, M)
        frames = self.frames(lengths).clamp(max=feats.shape[1])
        mask = _mask(frames, feats.shape[1]).unsqueeze(-1)  # (B, F, 1)
        count = frames.clamp(min=1).view(-1, 1, 1)
        mean = (feats * mask).sum(1, keepdim=True) / count
        var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / count
        # gain and channel do not change what was said: remove them per utterance
        return (feats - mean) / (var + 1e-5).sqrt() * mask, frames


class SpecAugment(nn.Module):
    """Frequency and time masks (Park et al. 2019), applied in training mode only.

    Args:
        freq_masks: frequency masks per utterance.
        freq_width: widest frequency mask (mel bands).
        time_masks: time masks per utterance.
        time_width: widest time mask (frames).
    """

    def __init__(self, freq_masks=2, freq_width=15, time_masks=2, time_width=20):
        super().__init__()
        self.freq = nn.ModuleList(
            torchaudio.transforms.FrequencyMasking(freq_width, iid_masks=True)
            for _ in range(freq_masks)
        )
        self.time = nn.ModuleList(
            torchaudio.transforms.TimeMasking(time_width, iid_masks=True) for _ in range(time_masks)
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, F, M) -> (B, F, M), masked when ``self.training``."""
        if not self.training or not (len(self.freq) or len(self.time)):
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, M, F): torchaudio's layout
        for mask in [*self.freq, *self.time]:
            x = mask(x)
        return x.squeeze(1).transpose(1, 2)


class ConvFrontEnd(nn.Module):
    """1-D convolutions over time that project features to ``dim`` and subsample."""

    def __init__(self, n_mels: int, dim: int, strides: tuple[int, ...] = (2, 2)):
        super().__init__()
        layers, width = [], n_mels
        for stride in strides:
            layers += [nn.Conv1d(width, dim, 2 * stride + 1, stride, padding=stride), nn.GELU()]
            width = dim
        self.net = nn.Sequential(*layers)
        self.strides = tuple(strides)

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        for stride in self.strides:  # the output length of each padded convolution
            frames = (frames - 1) // stride + 1
        return frames

    def forward(self, feats: torch.Tensor, frames: torch.Tensor):
        """(B, F, M), (B,) -> (B, F', dim), (B,)."""
        return self.net(feats.transpose(1, 2)).transpose(1, 2), self.frames(frames)


class TransformerEncoder(nn.Module):
    """A pre-norm ``nn.TransformerEncoder`` with sinusoidal positions (the other encoder)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, layers: int, dropout: float):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, ffn_dim, dropout, batch_first=True, norm_first=True
        )
        self.net = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dim = dim

    def forward(self, x: torch.Tensor, frames: torch.Tensor):
        pos = torch.arange(x.shape[1], device=x.device).unsqueeze(1)
        freqs = torch.exp(torch.arange(0, self.dim, 2, device=x.device) * (-9.21 / self.dim))
        table = torch.zeros(x.shape[1], self.dim, device=x.device)
        table[:, 0::2], table[:, 1::2] = torch.sin(pos * freqs), torch.cos(pos * freqs)
        pad = ~_mask(frames, x.shape[1])
        return self.net(x + table, src_key_padding_mask=pad), frames


@dataclass
class CtcOutput:
    """What the model returns.

    Attributes:
        log_probs: (B, F', vocab) CTC log-probabilities.
        frames: (B,) valid output frames.
        aux_log_probs: (B, F', vocab) of the auxiliary head, or None.
    """

    log_probs: torch.Tensor
    frames: torch.Tensor
    aux_log_probs: torch.Tensor | None = None


class CtcRecognizer(nn.Module):
    """Features -> SpecAugment -> front end -> encoder -> CTC head.

    Args:
        vocab_size: CTC classes (blank included).
        sample_rate: audio rate.
        n_mels: mel bands.
        hop_ms: feature hop (ms).
        dim: encoder width.
        layers: encoder layers.
        heads: attention heads.
        ffn_dim: feed-forward width.
        conv_kernel: Conformer depthwise kernel size.
        dropout: encoder dropout.
        strides: front-end subsampling per convolution.
        encoder: ``conformer`` (torchaudio) or ``transformer``.
        specaugment: SpecAugment keyword arguments, or None for none.
        aux_head: add the auxiliary CTC head on the front end's output.
    """

    def __init__(
        self,
        vocab_size: int,
        sample_rate: int = 16000,
        n_mels: int = 80,
        hop_ms: float = 10,
        dim: int = 144,
        layers: int = 4,
        heads: int = 4,
        ffn_dim: int = 576,
        conv_kernel: int = 15,
        dropout: float = 0.1,
        strides: tuple[int, ...] = (2, 2),
        encoder: str = "conformer",
        specaugment: dict | None = None,
        aux_head: bool = False,
    ):
        super().__init__()
        if encoder not in ("conformer", "transformer"):
            raise ValueError(f"encoder={encoder!r}: use conformer or transformer")
        self.sample_rate = int(sample_rate)
        self.vocab_size = int(vocab_size)
        self.features = LogMel(sample_rate, n_mels, hop_ms=hop_ms)
        self.specaugment = SpecAugment(**(specaugment or {})) if specaugment is not None else None
        self.frontend = ConvFrontEnd(n_mels, dim, tuple(strides))
        if encoder == "conformer":
            self.encoder = torchaudio.models.Conformer(
                input_dim=dim, num_heads=heads, ffn_dim=ffn_dim, num_layers=layers,
                depthwise_conv_kernel_size=conv_kernel, dropout=dropout,
            )  # fmt: skip
        else:
            self.encoder = TransformerEncoder(dim, heads, ffn_dim, layers, dropout)
        self.ctc_head = nn.Linear(dim, vocab_size)
        self.aux_head = nn.Linear(dim, vocab_size) if aux_head else None

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame."""
        strides = 1
        for s in self.frontend.strides:
            strides *= s
        return self.features.hop * strides / self.sample_rate

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor) -> CtcOutput:
        """(B, T) audio and (B,) lengths in samples -> CTC log-probabilities."""
        feats, frames = self.features(wav, lengths)  # (B, F, M)
        if self.specaugment is not None:
            feats = self.specaugment(feats)
        x, frames = self.frontend(feats, frames)  # (B, F', D)
        frames = frames.clamp(min=1, max=x.shape[1])
        aux = self.aux_head(x).log_softmax(-1) if self.aux_head is not None else None
        x, frames = self.encoder(x, frames)
        return CtcOutput(self.ctc_head(x).log_softmax(-1), frames, aux)


def _mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) lengths -> (B, size) True where valid."""
    return torch.arange(size, device=lengths.device)[None] < lengths[:, None]


def ctc_loss(log_probs: torch.Tensor, frames: torch.Tensor, targets: list[list[int]]):
    """Mean CTC loss per target token of a batch (blank = 0).

    Args:
        log_probs: (B, F, V) log-probabilities.
        frames: (B,) valid frames.
        targets: token ids per utterance.

    Returns:
        Scalar loss: each utterance's negative log-likelihood divided by its target
        length, averaged over the batch (torch's ``reduction="mean"``); impossible
        alignments (more tokens than frames) count zero instead of infinity.
    """
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    target_lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    return nn.functional.ctc_loss(
        log_probs.transpose(0, 1).float(),  # (F, B, V), as torch expects
        flat.to(log_probs.device),
        frames,
        target_lengths.to(log_probs.device),
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )
