"""LJSpeech: ``metadata.csv`` with ``<id>|<raw text>|<normalized text>`` lines (no header,
no quoting: a ``"`` is part of the text) and ``wavs/<id>.wav``. The normalized text
(numbers spelled out) is the transcript; the raw one is kept as ``raw_text``.

Import the corpus folder (``LJSpeech-1.1/``).
"""

from __future__ import annotations

from pathlib import Path

from audioflow.data.corpora.common import LayoutError, Listing, Utterance, no_transcript, read_lines

METADATA = "metadata.csv"
AUDIO_FOLDER = "wavs"


def read_layout(root: Path, split: str | None = None) -> Listing:
    """List the utterances of ``metadata.csv``.

    Raises:
        LayoutError: ``split`` was given, or ``metadata.csv`` is missing.
    """
    if split is not None:
        raise LayoutError(f"--split {split}: LJSpeech has one part; leave --split out")
    metadata = root / METADATA
    if not metadata.is_file():
        raise LayoutError(f"{root}: no {METADATA}; not an LJSpeech folder")
    listing = Listing("ljspeech")
    listed = set()
    for number, line in read_lines(metadata):
        cells = line.split("|")
        utt_id = cells[0].strip()
        audio = root / AUDIO_FOLDER / f"{utt_id}.wav"
        listed.add(audio.name)
        raw = cells[1].strip() if len(cells) > 1 else ""
        normalized = cells[2].strip() if len(cells) > 2 else ""
        if not (raw or normalized):
            what = f"{METADATA} line {number} has no text"
            listing.rejects.append((str(audio), no_transcript(what)))
            continue
        if not audio.is_file():
            reason = f"missing audio: listed in {METADATA} line {number}"
            listing.rejects.append((str(audio), reason))
            continue
        meta = {"id": utt_id, "text": normalized or raw, "raw_text": raw}
        listing.utterances.append(Utterance(str(audio), meta))
    for audio in sorted((root / AUDIO_FOLDER).glob("*.wav")):
        if audio.name not in listed:
            listing.rejects.append((str(audio), no_transcript(f"not in {METADATA}")))
    return listing
