"""The transcript page of the ASR solver's generate stage.

One ``index.html`` per epoch: a row per utterance with its audio, the reference, the
greedy (and beam) hypothesis, and the word alignment that shows each error in place
(substitutions, deletions, insertions), with the utterance's WER.
"""

from __future__ import annotations

import html
from pathlib import Path

import torch

from audioflow.data.tokenizer import normalize
from audioflow.metrics.asr import ErrorCounts, align_words
from audioflow.solvers.pages import html_page, write_audio

_STYLE = (
    ".sub{background:#fde2a8}.del{background:#f8c4c4;text-decoration:line-through}"
    ".ins{background:#c8ecc8}"
)


def write_clip(folder: Path, name: str, wav: torch.Tensor, sample_rate: int) -> str:
    """Write a (T,) utterance as ``<name>.wav``; returns the file name."""
    write_audio(folder / f"{name}.wav", wav[None], sample_rate)
    return f"{name}.wav"


def _aligned(reference: str, hypothesis: str) -> str:
    parts = []
    for op, ref, hyp in align_words(reference, hypothesis):
        ref, hyp = html.escape(ref), html.escape(hyp)
        if op == "equal":
            parts.append(ref)
        elif op == "substitute":
            parts.append(f'<span class="sub" title="said: {ref}">{hyp}</span>')
        elif op == "delete":
            parts.append(f'<span class="del">{ref}</span>')
        else:
            parts.append(f'<span class="ins">{hyp}</span>')
    return " ".join(parts)


def transcript_row(
    name: str, audio: str, reference: str, greedy: str, beam: str | None = None
) -> dict:
    """One row of the page (plain strings, so ranks can gather rows)."""
    ref = normalize(reference)
    counts = ErrorCounts()
    counts.add([ref], [greedy])
    row = {
        "name": name,
        "audio": audio,
        "reference": ref,
        "greedy": greedy,
        "aligned": _aligned(ref, greedy),
        "wer": counts.wer,
    }
    if beam is not None:
        row["beam"] = beam
    return row


def write_page(folder: Path, title: str, rows: list[dict]) -> Path:
    """Write ``folder/index.html`` atomically; returns its path."""
    with_beam = any("beam" in row for row in rows)
    head = "<th>utterance</th><th>reference</th><th>greedy hypothesis (errors marked)</th>"
    head += "<th>beam hypothesis</th>" if with_beam else ""
    body = []
    for row in rows:
        beam = f"<td>{html.escape(row.get('beam', ''))}</td>" if with_beam else ""
        body.append(
            f"<tr><td><b>{html.escape(row['name'])}</b> (WER {100 * row['wer']:.0f} %)<br>"
            f'<audio controls preload="none" src="{html.escape(row["audio"])}"></audio></td>'
            f"<td>{html.escape(row['reference'])}</td><td>{row['aligned']}</td>{beam}</tr>"
        )
    page = (
        f"<h2>{html.escape(title)}</h2><p>Errors: <span class='sub'>substituted</span> "
        "(hover for the reference word), <span class='del'>deleted</span>, "
        "<span class='ins'>inserted</span>.</p>"
        f"<table><tr>{head}</tr>{''.join(body)}</table>"
    )
    return html_page(folder, title, page, style=_STYLE)
