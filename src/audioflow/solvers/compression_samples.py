"""Listening material of the compression solver's generate stage.

For each sample: the original and one reconstruction per bandwidth as audio files, a
spectrogram PNG of each, and one ``index.html`` per epoch with a row per sample and a
column per bandwidth, to listen and compare in a browser.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import torch

from audioflow.data.audio import write_audio_file


def write_audio(path: Path, wav: torch.Tensor, sample_rate: int) -> Path:
    """Write (C, T) audio as 16-bit WAV, clipped to [-1, 1]."""
    data = wav.detach().float().clamp(-1, 1).cpu().numpy().T  # (T, C)
    return write_audio_file(path, data, sample_rate, subtype="PCM_16")


def write_spectrogram(path: Path, wav: torch.Tensor, sample_rate: int, title: str) -> Path:
    """Save a log-magnitude spectrogram of the first channel as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    from matplotlib import pyplot as plt

    signal = wav.detach().float().cpu()[0]
    n_fft = 512
    spec = torch.stft(
        signal, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True
    )
    db = 20 * torch.log10(spec.abs().clamp(min=1e-5)).numpy()
    fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
    duration = signal.shape[-1] / sample_rate
    ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-80,
        vmax=max(float(np.max(db)), -60),
        extent=(0, duration, 0, sample_rate / 2000),
    )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_index(folder: Path, title: str, rows: list[dict], columns: list[str]) -> Path:
    """Write ``folder/index.html``: one row per sample, one cell per column.

    Args:
        folder: the epoch's samples folder (file names in rows are relative to it).
        title: page heading.
        rows: ``{"name": str, "metrics": str, "cells": {column: (wav_name, png_name)}}``.
        columns: column labels in order ("original", then one per bandwidth).

    Returns:
        The page path (written atomically).
    """
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            wav, png = row["cells"][column]
            cells.append(
                f'<td><img src="{html.escape(png)}" width="320"><br>'
                f'<audio controls preload="none" src="{html.escape(wav)}"></audio></td>'
            )
        label = f"<b>{html.escape(row['name'])}</b><br><small>{html.escape(row['metrics'])}</small>"
        body.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px;vertical-align:top}</style>"
        f"</head><body><h2>{html.escape(title)}</h2>"
        f"<table><tr><th>sample</th>{head}</tr>{''.join(body)}</table></body></html>\n"
    )
    path = folder / "index.html"
    tmp = folder / f".index.html.tmp.{os.getpid()}"
    tmp.write_text(page)
    os.replace(tmp, path)
    return path
