"""Listening material of the compression solver's generate stage (built on solvers.pages).

For each clip: the original, one reconstruction per bandwidth and Opus at the matching
bitrate as audio files, a spectrogram PNG of each, and one ``index.html`` per epoch with
a row per clip and a column per version, all spectrograms on the one dB scale of
:mod:`audioflow.solvers.pages`. The page's header gives the XP's
signature and overrides, the aggregate metrics of the rendered clips and of the evaluate
stage, and links to the pages of the other epochs.
"""

from __future__ import annotations

import html
from pathlib import Path

from audioflow.solvers.pages import audio_cell, html_page


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
            cells.append(audio_cell(wav, png, column, row.get("notes", {}).get(column, "")))
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
    return html_page(folder, title, "".join(parts))
