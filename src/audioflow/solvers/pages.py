"""Listening pages of any solver: audio files, spectrograms on one dB scale, an HTML page.

Every spectrogram is drawn on one absolute dB scale (dB re a full-scale sine, the same
colorbar on every image), so a quieter version of a sound looks darker, never brighter.
Task solvers build their page bodies on :func:`html_page` (compression_samples does).
"""

from __future__ import annotations

import functools
import html
from pathlib import Path

import numpy as np
import torch

from audioflow import atomic
from audioflow.data.audio import write_audio_file

# The one dB scale of every spectrogram (dB re a full-scale sine's peak bin).
DB_RANGE = (-100.0, 0.0)
N_FFT = 512


def write_audio(path: Path, wav: torch.Tensor, sample_rate: int) -> Path:
    """Write (C, T) audio as 16-bit WAV, clipped to [-1, 1]."""
    data = wav.detach().float().clamp(-1, 1).cpu().numpy().T  # (T, C)
    return write_audio_file(path, data, sample_rate, subtype="PCM_16")


def active_fraction(wav: torch.Tensor, sample_rate: int, floor_db: float = -50.0) -> float:
    """Share of the 20 ms frames of (C, T) audio whose RMS is above ``floor_db`` dBFS."""
    signal = wav.detach().float().cpu().mean(0)
    hop = max(1, sample_rate // 50)
    frames = signal[: len(signal) // hop * hop].view(-1, hop)
    if frames.numel() == 0:
        return 0.0
    rms_db = 10 * torch.log10(frames.pow(2).mean(1).clamp(min=1e-12))
    return float((rms_db > floor_db).float().mean())


def levels(estimate: torch.Tensor, reference: torch.Tensor) -> dict:
    """RMS of ``estimate`` relative to ``reference`` in dB, and its DC offset."""
    rms = lambda x: float(x.float().pow(2).mean().sqrt().clamp(min=1e-9))  # noqa: E731
    return {
        "level_db": 20 * float(np.log10(rms(estimate) / rms(reference))),
        "dc": float(estimate.float().mean()),
    }


def spectrogram_db(wav: torch.Tensor) -> np.ndarray:
    """dB magnitude spectrogram of the first channel of (C, T) audio (0 dB = full scale)."""
    signal = wav.detach().float().cpu()[0]
    window = torch.hann_window(N_FFT)
    spec = torch.stft(signal, N_FFT, hop_length=N_FFT // 4, window=window, return_complex=True)
    # a full-scale sine peaks at sum(window) / 2 in its bin: that is 0 dB
    ref = float(window.sum()) / 2
    return (20 * torch.log10(spec.abs().clamp(min=1e-7) / ref)).numpy()


@functools.cache
def _spectrogram_figure():
    """(figure, axes, image), one per process: made once, then only its data, extent and
    title change (a new figure per PNG spent most of its time building the axes' ticks)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
    # fixed margins: tight_layout measures every text box and doubled the cost of a page
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.2, top=0.88)
    image = ax.imshow(
        [[DB_RANGE[0]]],
        origin="lower",
        interpolation="nearest",
        aspect="auto",
        cmap="magma",
        vmin=DB_RANGE[0],
        vmax=DB_RANGE[1],
    )
    fig.colorbar(image, ax=ax, label="dB FS", pad=0.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    return fig, ax, image


def write_spectrogram(path: Path, wav: torch.Tensor, sample_rate: int, title: str) -> Path:
    """Save the spectrogram of (C, T) audio as a PNG on the shared scale, with a colorbar."""
    fig, ax, image = _spectrogram_figure()
    duration = wav.shape[-1] / sample_rate
    image.set_data(spectrogram_db(wav))
    extent = (0, duration, 0, sample_rate / 2000)
    image.set_extent(extent)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def html_page(
    folder: Path, title: str, body: str, name: str = "index.html", style: str = ""
) -> Path:
    """Write ``folder/name``: a plain HTML page with ``body`` (already escaped), atomically.

    Args:
        style: CSS rules added to the page's own (a task's markup classes).

    Returns:
        The page path.
    """
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px;vertical-align:top;"
        f"text-align:left}}table{{border-collapse:collapse}}{style}</style>"
        f"</head><body>{body}</body></html>\n"
    )
    path = Path(folder) / name
    atomic.write_text(path, page, fsync=False)  # a page is rewritten by the next run anyway
    return path


def audio_cell(wav: str, png: str, label: str, note: str = "") -> str:
    """A table cell: the spectrogram, a player that shows its length, a note."""
    return (
        f'<td><img src="{html.escape(png)}" width="360" alt="{html.escape(label)}"><br>'
        f'<audio controls preload="metadata" src="{html.escape(wav)}"></audio>'
        f"<br><small>{html.escape(note)}</small></td>"
    )
