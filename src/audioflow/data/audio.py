"""Read audio segments by seeking, convert channels and resample (torch tensors)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from audioflow import atomic


def read_frames(path: str, start: int = 0, frames: int = -1) -> np.ndarray:
    """Read ``frames`` frames from ``start`` without decoding the rest of the file.

    Args:
        path: audio file libsndfile can read.
        start: first frame (at the file's own rate).
        frames: number of frames; -1 reads to the end.

    Returns:
        float32 array of shape (C, T); T is shorter than ``frames`` near the end.
    """
    data, _ = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T)  # (T, C) -> (C, T)


# Frames per libsndfile write call: libvorbis allocates its analysis buffer on the stack
# for each call, and one call with a few minutes of audio overflows it (a segfault).
_WRITE_BLOCK = 1 << 16


def write_audio_file(
    path: str | Path, data: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write (T, C) audio in the format its extension names, atomically and in blocks.

    Args:
        path: destination; ``.wav``, ``.flac``, ``.ogg``, ``.mp3``... (libsndfile formats).
        data: float samples in [-1, 1], shape (T, C) or (T,).
        sample_rate: in Hz.
        subtype: e.g. ``PCM_16``; default: the format's default.

    Returns:
        The path written. On any error the destination is left as it was.

    Raises:
        ValueError: the extension or subtype names nothing libsndfile writes.
    """
    import soundfile as sf

    path = Path(path)
    fmt = path.suffix[1:].upper()
    if fmt not in sf.available_formats():
        known = " ".join(f".{f.lower()}" for f in ("wav", "flac", "ogg", "mp3", "aiff"))
        raise ValueError(f"{path}: no audio format for '{path.suffix}'; use one of {known}")
    if subtype is not None and not sf.check_format(fmt, subtype):
        raise ValueError(f"{path}: {fmt} cannot hold {subtype} samples")
    data = np.asarray(data)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with (
        atomic.replacing(path) as tmp,
        sf.SoundFile(tmp, "w", sample_rate, channels, subtype, format=fmt) as out,
    ):
        for start in range(0, len(data), _WRITE_BLOCK):
            out.write(data[start : start + _WRITE_BLOCK])
    return path


def convert_channels(wav: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert (C, T) audio to ``channels`` channels.

    Mono output averages the channels; mono input is repeated; otherwise the first
    ``channels`` channels are kept (as AudioCraft does).

    Raises:
        ValueError: upmixing from 2+ channels to more channels is ambiguous.
    """
    have = wav.shape[0]
    if have == channels:
        return wav
    if channels == 1:
        return wav.mean(dim=0, keepdim=True)
    if have == 1:
        return wav.expand(channels, -1).contiguous()
    if have > channels:
        return wav[:channels]
    raise ValueError(f"cannot convert {have}-channel audio to {channels} channels")


@functools.lru_cache(maxsize=32)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    # The windowed-sinc kernel depends only on the rate pair: build it once per process.
    return torchaudio.transforms.Resample(orig, new)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample (..., T) audio from ``orig`` Hz to ``new`` Hz (kernel cached by rate pair)."""
    if orig == new:
        return wav
    with torch.no_grad():
        return _resampler(int(orig), int(new))(wav)


def read_segment(
    path: str,
    seek_time: float,
    duration: float | None,
    sample_rate: int,
    channels: int,
    file_sample_rate: int | None = None,
) -> torch.Tensor:
    """Read ``duration`` seconds from ``seek_time`` at ``sample_rate`` with ``channels``.

    Only the frames covering the segment are decoded. The result may be shorter than
    asked near the end of the file; padding is the caller's choice.

    Args:
        path: audio file.
        seek_time: start in seconds.
        duration: seconds to read; None reads to the end of the file.
        sample_rate: output rate.
        channels: output channels.
        file_sample_rate: the file's rate if already known (saves a header read).

    Returns:
        float32 tensor (channels, T) with T <= round(duration * sample_rate).
    """
    rate = file_sample_rate or sf.info(path).samplerate
    start = int(math.floor(seek_time * rate))
    frames = -1 if duration is None else int(math.ceil(duration * rate))
    wav = torch.from_numpy(read_frames(path, start, frames))  # (C, T) at the file rate
    wav = resample(convert_channels(wav, channels), rate, sample_rate)
    if duration is not None:
        wav = wav[:, : int(round(duration * sample_rate))]
    return wav
