"""What every corpus importer shares: the listing it reads, and writing it as a manifest.

A corpus's index files (transcript lists, wav.scp, tsv) say which utterances exist; the
audio files say whether they can be read. ``write_listing`` probes each audio file once
(in parallel, as a folder scan does), joins the index's fields onto the probed ones and
writes the manifest and the rejects file atomically, sorted, so an unchanged corpus gives
byte-identical files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from audioflow.data.manifest import (
    ManifestReport,
    default_rejects_path,
    probe_files,
    write_jsonl,
)
from audioflow.data.scan import FoundFile

# Segments may end a little past the recording: Kaldi's segments are rounded to 10 ms.
_SEGMENT_SLACK_S = 0.02


class LayoutError(ValueError):
    """The folder is not in the layout asked for, or an option does not fit it (exit 2)."""


@dataclass
class Utterance:
    """One utterance a corpus index lists.

    Attributes:
        path: absolute path of its audio file.
        meta: manifest fields from the index (``text``, ``id``, ``speaker``...).
        offset: start in seconds within the file (Kaldi segments), else None.
        end: end in seconds within the file, else None (the whole file).
    """

    path: str
    meta: dict
    offset: float | None = None
    end: float | None = None


@dataclass
class Listing:
    """What an importer read: utterances to probe and entries already refused.

    Attributes:
        layout: the layout's name (recorded in each entry as ``corpus``).
        utterances: the utterances the index lists.
        rejects: ``(path, reason)`` found while reading the index (no transcript, missing
            audio, unsupported entry).
    """

    layout: str
    utterances: list[Utterance] = field(default_factory=list)
    rejects: list[tuple[str, str]] = field(default_factory=list)


def read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text index, blank lines left out.

    Raises:
        LayoutError: the file is not UTF-8 (the message names it).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: some exports start with a BOM
    except UnicodeDecodeError as err:
        raise LayoutError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def no_transcript(what: str) -> str:
    """The reject reason of an utterance its corpus gives no transcript."""
    return f"no transcript: {what}"


def write_listing(
    listing: Listing,
    output: str | Path,
    *,
    rejects: str | Path | None = None,
    workers: int | None = None,
) -> ManifestReport:
    """Probe the listed audio and write the manifest and its rejects file.

    Args:
        listing: what the importer read.
        output: manifest path.
        rejects: rejects file (default: beside the manifest).
        workers: probe processes (default: all CPUs this process may use).

    Returns:
        A ManifestReport (``probed``: audio files read).

    Raises:
        ValueError: no utterance is usable (no manifest is written; reasons in the rejects).
    """
    began = time.perf_counter()
    output = Path(output).absolute()
    rejects_file = Path(rejects).absolute() if rejects is not None else default_rejects_path(output)
    for target, what in ((output, "the manifest"), (rejects_file, "the rejects file")):
        if target.is_dir():
            raise ValueError(f"{target}: is a folder; give the path of {what} to write")
    report = ManifestReport(output=output, rejects_file=rejects_file)
    report.rejects.extend(listing.rejects)
    found: dict[str, FoundFile] = {}
    for utt in listing.utterances:
        if utt.path in found:
            continue
        try:
            st = os.stat(utt.path)
        except OSError:
            continue  # rejected below, with the utterances that name it
        found[utt.path] = FoundFile(utt.path, st.st_size, st.st_mtime)
    probed = {
        path: (entry, reason) for path, entry, reason in probe_files(list(found.values()), workers)
    }
    report.probed = len(probed)
    rows = []
    for utt in listing.utterances:
        entry, reason = probed.get(utt.path, (None, "missing audio: the file does not exist"))
        if entry is None:
            report.rejects.append((utt.path, f"{reason} ({_named(utt)})"))
            continue
        row = dict(entry)
        if utt.offset is not None:
            end = row["duration"] if utt.end is None else utt.end
            if end > row["duration"] + _SEGMENT_SLACK_S or end <= utt.offset:
                report.rejects.append((
                    utt.path,
                    f"bad segment: {_named(utt)} spans {utt.offset:.2f}-{end:.2f} s of a "
                    f"{row['duration']:.2f} s recording; fix its segments line",
                ))  # fmt: skip
                continue
            row["offset"] = float(utt.offset)
            row["duration"] = min(end, row["duration"]) - utt.offset
        row.update(utt.meta)
        row["corpus"] = listing.layout
        rows.append(row)
    rows.sort(key=lambda r: (r["path"], r.get("offset", 0.0)))
    report.rejects.sort()
    write_jsonl(rejects_file, [{"path": p, "reason": r} for p, r in report.rejects])
    if not rows:
        raise ValueError(
            f"none of the {len(listing.utterances)} utterances listed is usable; reasons in "
            f"{rejects_file}"
        )
    write_jsonl(output, rows)
    report.entries = len(rows)
    report.seconds = time.perf_counter() - began
    return report


def _named(utt: Utterance) -> str:
    return f"utterance {utt.meta['id']}" if "id" in utt.meta else Path(utt.path).name
