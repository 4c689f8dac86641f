"""LibriSpeech: ``<subset>/<speaker>/<chapter>/`` folders of ``<speaker>-<chapter>-<n>.flac``
files and one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utterance id> TEXT``
lines, upper-case words). ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``), in
the root or a folder above it, gives each speaker's sex when it is there.

Import the corpus root (``LibriSpeech/``) or one subset (``LibriSpeech/dev-clean``).
"""

from __future__ import annotations

from pathlib import Path

from audioflow.data.corpora.common import LayoutError, Listing, Utterance, no_transcript, read_lines

TRANSCRIPT_GLOB = "*.trans.txt"


def _speaker_sex(root: Path) -> dict[str, str]:
    for folder in (root, *root.parents[:2]):
        table = folder / "SPEAKERS.TXT"
        if table.is_file():
            break
    else:
        return {}
    sex = {}
    for _, line in read_lines(table):
        if line.startswith(";"):  # the header is commented out with ';'
            continue
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) >= 2 and cells[0]:
            sex[cells[0]] = cells[1]
    return sex


def read_layout(root: Path, split: str | None = None) -> Listing:
    """List the utterances of every chapter under ``root``.

    Raises:
        LayoutError: ``split`` was given (LibriSpeech subsets are folders: import one), or
            no ``*.trans.txt`` is under ``root``.
    """
    if split is not None:
        raise LayoutError(
            f"--split {split}: LibriSpeech subsets are folders; import {root / split} instead"
        )
    listing = Listing("librispeech")
    sex = _speaker_sex(root)
    chapters = sorted(root.rglob(TRANSCRIPT_GLOB))
    if not chapters:
        raise LayoutError(
            f"{root}: no {TRANSCRIPT_GLOB} under it; not a LibriSpeech folder "
            "(<speaker>/<chapter>/<speaker>-<chapter>.trans.txt)"
        )
    with_transcripts = {trans.parent for trans in chapters}
    for trans in chapters:
        listed = set()
        for number, line in read_lines(trans):
            utt_id, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{utt_id}.flac"
            listed.add(audio.name)
            if not text.strip():
                listing.rejects.append((str(audio), no_transcript(f"empty in {trans.name}")))
                continue
            speaker, chapter = (utt_id.split("-") + ["", ""])[:2]
            meta = {"id": utt_id, "text": text.strip(), "speaker": speaker, "chapter": chapter}
            if speaker in sex:
                meta["sex"] = sex[speaker]
            if not audio.is_file():
                listing.rejects.append((
                    str(audio), f"missing audio: listed in {trans.name} line {number}"
                ))  # fmt: skip
                continue
            listing.utterances.append(Utterance(str(audio), meta))
        for audio in sorted(trans.parent.glob("*.flac")):
            if audio.name not in listed:
                what = f"{audio.stem} has no line in {trans.name}"
                listing.rejects.append((str(audio), no_transcript(what)))
    for audio in sorted(root.rglob("*.flac")):
        if audio.parent not in with_transcripts:
            what = f"its chapter folder has no {TRANSCRIPT_GLOB}"
            listing.rejects.append((str(audio), no_transcript(what)))
    return listing
