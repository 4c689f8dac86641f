"""Kaldi data folders: ``wav.scp`` (``<recording> <path>``), ``text`` (``<utterance>
<transcript>``), and when present ``segments`` (``<utterance> <recording> <start> <end>``,
seconds) and ``utt2spk`` (``<utterance> <speaker>``). Without ``segments`` an utterance is
a whole recording (same id).

``wav.scp`` entries that are commands (``sox ... |``) or archives (``foo.ark:123``) are
rejected: convert them to audio files first. Relative paths are resolved against the
current folder, as Kaldi's tools do.
"""

from __future__ import annotations

import os
from pathlib import Path

from audioflow.data.corpora.common import LayoutError, Listing, Utterance, no_transcript, read_lines


def _table(path: Path, fields: int) -> dict[str, tuple[int, list[str]]]:
    """``{key: (line number, rest)}`` of a Kaldi table; ``rest`` split in ``fields`` parts
    at most (the last keeps its spaces: a transcript or a path with spaces)."""
    table = {}
    for number, line in read_lines(path):
        parts = line.strip().split(maxsplit=fields)
        table[parts[0]] = (number, parts[1:])
    return table


def _recording_path(value: str) -> str | None:
    """The file of a wav.scp value, or None for a pipe command or an archive offset."""
    value = value.strip()
    if value.endswith("|") or value.startswith(("ark:", "scp:")) or value.count(".ark:"):
        return None
    return os.path.abspath(value)


def read_layout(root: Path, split: str | None = None) -> Listing:
    """List the utterances of the data folder ``root``.

    Raises:
        LayoutError: ``split`` was given (a Kaldi data folder is one split), or ``wav.scp``
            or ``text`` is missing.
    """
    if split is not None:
        raise LayoutError(f"--split {split}: a Kaldi data folder is one split; import it")
    for name in ("wav.scp", "text"):
        if not (root / name).is_file():
            raise LayoutError(f"{root}: no {name}; not a Kaldi data folder (wav.scp + text)")
    recordings = _table(root / "wav.scp", 1)
    texts = _table(root / "text", 1)
    speakers = _table(root / "utt2spk", 1) if (root / "utt2spk").is_file() else {}
    listing = Listing("kaldi")
    paths = {}
    for rec, (number, rest) in recordings.items():
        path = _recording_path(rest[0]) if rest else None
        if path is None:
            reason = (
                f"unsupported: wav.scp line {number} ({rec}) is a command or an archive, not "
                "a file; write the audio to files (e.g. with sox) and list those"
            )
            listing.rejects.append((str(root / "wav.scp"), reason))
        paths[rec] = path
    if (root / "segments").is_file():
        spans = {}
        for utt, (number, rest) in _table(root / "segments", 3).items():
            try:
                spans[utt] = (rest[0], float(rest[1]), float(rest[2]))
            except (IndexError, ValueError):
                reason = f"bad segment: segments line {number} is not '<utt> <rec> <start> <end>'"
                listing.rejects.append((str(root / "segments"), reason))
    else:
        spans = {rec: (rec, None, None) for rec in recordings}
    for utt, (rec, start, end) in sorted(spans.items()):
        if rec not in paths:
            reason = f"missing audio: utterance {utt} names recording {rec}, not in wav.scp"
            listing.rejects.append((str(root / "segments"), reason))
            continue
        if paths[rec] is None:
            continue  # the wav.scp line is rejected already
        if utt not in texts or not "".join(texts[utt][1]).strip():
            what = f"utterance {utt} has no line in text"
            listing.rejects.append((paths[rec], no_transcript(what)))
            continue
        meta = {"id": utt, "text": texts[utt][1][0].strip(), "recording": rec}
        if utt in speakers and speakers[utt][1]:
            meta["speaker"] = speakers[utt][1][0].strip()
        listing.utterances.append(Utterance(paths[rec], meta, start, end))
    for utt, (number, _) in sorted(texts.items()):
        if utt not in spans:
            reason = f"missing audio: text line {number} ({utt}) has no recording or segment"
            listing.rejects.append((str(root / "text"), reason))
    return listing
