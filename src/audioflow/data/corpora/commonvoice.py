"""Common Voice: one language folder (``cv-corpus-<version>/<locale>/``) with ``clips/``
(MP3 files) and tab-separated split files (``train.tsv``, ``dev.tsv``, ``test.tsv``,
``validated.tsv``, ``other.tsv``, ``invalidated.tsv``), each with a header naming its
columns (``client_id``, ``path``, ``sentence``, votes, ``age``, ``gender``, ``accents``,
``locale``...; the set changes between releases, so columns are read by name).

Import the language folder with ``--split`` naming the tsv (default ``train``). Clips
that the split does not list belong to other splits and are not rejects.
"""

from __future__ import annotations

import csv
from pathlib import Path

from audioflow.data.corpora.common import LayoutError, Listing, Utterance, no_transcript, read_lines

DEFAULT_SPLIT = "train"
CLIPS = "clips"
# tsv column -> manifest field (client_id is the speaker)
_FIELDS = {"client_id": "speaker", "age": "age", "gender": "gender", "locale": "locale"}
_ACCENT_COLUMNS = ("accents", "accent")  # "accent" before release 8
_VOTES = ("up_votes", "down_votes")


def read_layout(root: Path, split: str | None = None) -> Listing:
    """List the utterances of ``<split>.tsv``.

    Raises:
        LayoutError: the split file is missing (the message lists those present) or
            lacks a ``path`` or ``sentence`` column.
    """
    split = split or DEFAULT_SPLIT
    table = root / f"{split}.tsv"
    if not table.is_file():
        present = ", ".join(sorted(p.stem for p in root.glob("*.tsv"))) or "none"
        raise LayoutError(
            f"{table}: no such split file (splits here: {present}); choose one with --split"
        )
    lines = [line for _, line in read_lines(table)]
    # QUOTE_NONE: sentences hold quotes that are text, not CSV quoting.
    rows = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in ("path", "sentence") if c not in (rows.fieldnames or [])]
    if missing:
        raise LayoutError(f"{table}: no {' or '.join(missing)} column; not a Common Voice tsv")
    listing = Listing("commonvoice")
    for number, row in enumerate(rows, 2):
        audio = root / CLIPS / (row["path"] or "").strip()
        sentence = (row.get("sentence") or "").strip()
        if not sentence:
            what = f"empty sentence in {table.name} line {number}"
            listing.rejects.append((str(audio), no_transcript(what)))
            continue
        meta = {"id": audio.stem, "text": sentence, "split": split}
        for column, name in _FIELDS.items():
            if row.get(column):
                meta[name] = row[column].strip()
        accents = next((row[c] for c in _ACCENT_COLUMNS if row.get(c)), None)
        if accents:
            meta["accents"] = accents.strip()
        for column in _VOTES:
            if (row.get(column) or "").strip().isdigit():
                meta[column] = int(row[column])
        if not audio.is_file():
            reason = f"missing audio: listed in {table.name} line {number}"
            listing.rejects.append((str(audio), reason))
            continue
        listing.utterances.append(Utterance(str(audio), meta))
    return listing
