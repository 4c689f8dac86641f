"""Listening material of the compression solver's generate stage.

For each clip: the original, one reconstruction per bandwidth and Opus at the matching
bitrate as audio files, a spectrogram PNG of each, and one ``index.html`` per epoch with
a row per clip and a column per version. Every spectrogram is drawn on one absolute dB
scale (dB re full scale, the same colorbar on every image), so a reconstruction that is
quieter than the original looks darker, never brighter. The page's header gives the XP's
signature and overrides, the aggregate metrics of the rendered clips and of the evaluate
stage, and links to the pages of the other epochs.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import torch

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


def write_spectrogram(path: Path, wav: torch.Tensor, sample_rate: int, title: str) -> Path:
    """Save the spectrogram of (C, T) audio as a PNG on the shared scale, with a colorbar."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    from matplotlib import pyplot as plt

    db = spectrogram_db(wav)
    duration = wav.shape[-1] / sample_rate
    fig, ax = plt.subplots(figsize=(5, 2.4), dpi=80)
    image = ax.imshow(
        db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=DB_RANGE[0],
        vmax=DB_RANGE[1],
        extent=(0, duration, 0, sample_rate / 2000),
    )
    fig.colorbar(image, ax=ax, label="dB FS", pad=0.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            if column not in row["cells"]:
                cells.append("<td></td>")
                continue
            wav, png = row["cells"][column]
            note = row.get("notes", {}).get(column, "")
            cells.append(
                f'<td><img src="{html.escape(png)}" width="360" alt="{html.escape(column)}"><br>'
                f'<audio controls preload="metadata" src="{html.escape(wav)}"></audio>'
                f"<br><small>{html.escape(note)}</small></td>"
            )
        label = f"<b>{html.escape(row['name'])}</b>"
        body.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>clip</th>{head}</tr>{''.join(body)}</table>"


def _metrics_table(title: str, metrics: dict[str, dict]) -> str:
    if not metrics:
        return ""
    keys = sorted({k for values in metrics.values() for k in values})
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_fmt(values.get(k))}</td>" for k in keys)
        + "</tr>"
        for name, values in metrics.items()
    )
    return f"<h3>{html.escape(title)}</h3><table><tr><th></th>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"
    return "" if value is None else html.escape(str(value))


def epoch_links(folder: Path) -> str:
    """Links to the index pages of the other epochs beside ``folder`` (``epoch_<E>``)."""
    pages = []
    for sibling in folder.parent.glob("epoch_*"):
        suffix = sibling.name.removeprefix("epoch_")
        if suffix.isdigit() and ((sibling / "index.html").is_file() or sibling == folder):
            pages.append((int(suffix) if suffix.isdigit() else 0, sibling.name))
    links = [
        f"<b>{n}</b>" if name == folder.name else f'<a href="../{name}/index.html">{n}</a>'
        for n, name in sorted(pages)
    ]
    return "epochs: " + " ".join(links)


def write_index(
    folder: Path,
    title: str,
    rows: list[dict],
    columns: list[str],
    header: dict | None = None,
) -> Path:
    """Write ``folder/index.html``: a header, then one row per clip, one cell per column.

    Args:
        folder: the epoch's samples folder (file names in rows are relative to it).
        title: page heading.
        rows: ``{"name": str, "cells": {column: (wav_name, png_name)},
            "notes": {column: str}}``.
        columns: column labels in order ("original", each bandwidth, Opus).
        header: optional ``signature``, ``overrides`` (list), ``notes`` (list of lines),
            ``clip_metrics`` and ``evaluate_metrics`` (``{version: {metric: value}}``).

    Returns:
        The page path (written atomically).
    """
    header = header or {}
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if header.get("signature"):
        overrides = " ".join(header.get("overrides") or []) or "(none)"
        parts.append(
            f"<p>XP <code>{html.escape(header['signature'])}</code>, overrides: "
            f"<code>{html.escape(overrides)}</code></p>"
        )
    parts.append(f"<p>{epoch_links(folder)}</p>")
    for line in header.get("notes") or []:
        parts.append(f"<p><small>{html.escape(line)}</small></p>")
    parts.append(_metrics_table("these clips", header.get("clip_metrics") or {}))
    parts.append(_metrics_table("evaluate stage", header.get("evaluate_metrics") or {}))
    parts.append("<h3>clips</h3>" + _table(rows, columns))
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{padding:4px;vertical-align:top;"
        "text-align:left}table{border-collapse:collapse}</style>"
        f"</head><body>{''.join(parts)}</body></html>\n"
    )
    path = folder / "index.html"
    tmp = folder / f".index.html.tmp.{os.getpid()}"
    tmp.write_text(page)
    os.replace(tmp, path)
    return path
