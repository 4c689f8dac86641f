"""Remember what a manifest scan saw, so that an unchanged rescan reads and writes nothing.

After a scan, a small state file records a digest of everything the scan's output depends
on (options, every file's path/size/mtime, sidecar sizes/mtimes) and the size and mtime
of the manifest and rejects file it wrote. A rescan that walks the folders and computes
the same digest, while both files are still as written, is finished: the previous
manifest is not decoded, no rejected file is probed again and nothing is written.

The state is a cache, never a source of truth: it lives outside the dataset (so DVC and
Snakemake never see it), is ignored when anything disagrees, and a scan that cannot
write it only loses this shortcut.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from audioflow import atomic
from audioflow.data.scan import FoundFile

_VERSION = 2  # 2: stem transcripts (utt1.txt, utt1.lab) are part of the walk
# Files modified this recently may change again within one timestamp tick (1-2 s on
# FAT/HFS+/some network mounts) without their mtime moving: no shortcut is recorded then.
RACY_SECONDS = 2.0


def cache_dir() -> Path:
    """``$AUDIOFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/audioflow``, else ``~/.cache/audioflow``
    (the temporary folder's ``audioflow`` where there is no home)."""
    explicit = os.environ.get("AUDIOFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        # A container user with neither HOME nor a passwd entry gets "~" back unexpanded.
        base = os.path.join(home, ".cache") if home != "~" else tempfile.gettempdir()
    return Path(base) / "audioflow"


def state_path(output: Path) -> Path:
    """State file of the manifest at ``output`` (one per absolute manifest path)."""
    key = hashlib.sha256(os.fsencode(os.path.abspath(output))).hexdigest()[:24]
    return cache_dir() / "manifest-scans" / f"{key}.json"


class Fingerprint(NamedTuple):
    """Digest of a walk, and the newest mtime it saw (audio files and sidecars)."""

    digest: str
    newest: float


def fingerprint(found: list[FoundFile], options: dict) -> Fingerprint:
    """Digest of the walk and the options that decide a scan's output.

    Sidecars are stat'ed (not read) so that editing labels changes the digest.
    """
    digest = hashlib.sha256(json.dumps([_VERSION, options], sort_keys=True).encode())
    if not found:
        return Fingerprint(digest.hexdigest(), 0.0)
    # Columns of plain values pickle in one pass, several times faster than the tuples.
    paths, sizes, mtimes, has_json, has_txt, stem_text = zip(*found)
    digest.update(pickle.dumps((paths, sizes, mtimes, has_json, has_txt, stem_text), protocol=5))
    newest = max(mtimes)
    if any(has_json) or any(has_txt) or any(stem_text):
        sidecars = _sidecar_stats(found)
        digest.update(pickle.dumps(sidecars, protocol=5))
        newest = max([newest] + [mtime_ns / 1e9 for _, _, mtime_ns in sidecars])
    return Fingerprint(digest.hexdigest(), newest)


def _sidecar_stats(found: list[FoundFile]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every sidecar the walk saw; -1s for one gone since."""
    stats = []
    for f in found:
        sidecars = [f.path + ".json"] if f.has_json else []
        if f.has_txt:
            sidecars.append(f.path + ".txt")
        elif f.stem_text:
            sidecars.append(os.path.join(os.path.dirname(f.path), f.stem_text))
        for sidecar in sidecars:
            try:
                st = os.stat(sidecar)
                stats.append((sidecar, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((sidecar, -1, -1))
    return stats


def _stamp(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def unchanged(output: Path, rejects: Path, digest: str) -> int | None:
    """Number of manifest entries if the last scan of ``output`` saw exactly this, else None."""
    try:
        state = json.loads(state_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("version") != _VERSION:
        return None
    same = (
        state.get("digest") == digest
        and state.get("output") == str(output)
        and state.get("rejects_file") == str(rejects)
        and state.get("manifest") == _stamp(output)
        and state.get("rejects") == _stamp(rejects)
    )
    entries = state.get("entries")
    return entries if same and isinstance(entries, int) else None


def record(output: Path, rejects: Path, seen: Fingerprint, entries: int) -> None:
    """Save the state of a finished scan; skipped when a file is too fresh to trust."""
    if seen.newest > time.time() - RACY_SECONDS:
        forget(output)
        return
    state = {
        "version": _VERSION,
        "output": str(output),
        "rejects_file": str(rejects),
        "digest": seen.digest,
        "entries": entries,
        "manifest": _stamp(output),
        "rejects": _stamp(rejects),
    }
    try:
        atomic.write_text(state_path(output), json.dumps(state), fsync=False)
    except OSError:
        pass  # a read-only cache only costs the shortcut


def forget(output: Path) -> None:
    """Drop the state of ``output`` (its next rescan takes the full path)."""
    try:
        state_path(output).unlink()
    except OSError:
        pass
