"""Walk audio folders: follow links, filter with include/exclude globs, stat each file once.

The walk is the only part of a manifest scan that touches every file of a dataset even
when nothing changed, so it does one ``scandir`` per folder and one ``stat`` per matching
file, and learns which sidecars exist from the folder listing instead of probing for them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from itertools import repeat
from pathlib import Path
from typing import NamedTuple

# Extensions libsndfile reads (soundfile wheels bundle MP3 and Vorbis/Opus support).
READABLE_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
    ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64",
)  # fmt: skip
# Audio containers seen in real datasets that libsndfile cannot read: scanned by default
# so that they show up as rejects ("unsupported format") instead of vanishing silently.
UNSUPPORTED_EXTENSIONS = (".m4a", ".aac", ".wma", ".mp4", ".webm", ".amr", ".ape", ".wv")
DEFAULT_INCLUDE = tuple(f"*{ext}" for ext in READABLE_EXTENSIONS + UNSUPPORTED_EXTENSIONS)
SIDECAR_SUFFIXES = (".json", ".txt", ".lab")
# Transcripts named after the audio file's stem (``utt1.txt`` / ``utt1.lab`` beside
# ``utt1.wav``: TTS/ASR corpora, Montreal Forced Aligner), in order of preference.
STEM_TRANSCRIPT_SUFFIXES = (".txt", ".lab")
# Stat relative to an open folder where the platform can (Linux, macOS).
_USE_DIR_FD = os.stat in os.supports_dir_fd and os.scandir in os.supports_fd


class FoundFile(NamedTuple):
    """One audio file found by the walk.

    Attributes:
        path: absolute path as walked (links are not resolved, so paths stay stable).
        size: size in bytes (of the link target for a link).
        mtime: modification time in seconds.
        has_json: a ``<file>.json`` sidecar sits beside it.
        has_txt: a ``<file>.txt`` sidecar sits beside it.
        stem_text: name of a ``<stem>.txt`` (else ``<stem>.lab``) transcript beside it,
            or "" (``<file>.txt`` wins when both exist).
    """

    path: str
    size: int
    mtime: float
    has_json: bool = False
    has_txt: bool = False
    stem_text: str = ""


class _Globs:
    """Case-insensitive glob matching with a fast path for plain ``*.ext`` patterns.

    Most patterns are extensions; checking them with ``str.endswith`` instead of a regex
    keeps the walk at a few microseconds per file, which is what an unchanged rescan costs.
    """

    def __init__(self, patterns) -> None:
        plain = [p for p in patterns if p.startswith("*") and not any(c in p[1:] for c in "*?[/")]
        self.suffixes = tuple(p[1:].lower() for p in plain)
        rest = [p for p in patterns if p not in plain]
        self.regex = (
            re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in rest), re.IGNORECASE)
            if rest
            else None
        )
        self.empty = not patterns

    def match(self, rel: str, name: str) -> bool:
        if self.suffixes and name.lower().endswith(self.suffixes):
            return True
        return self.regex is not None and bool(self.regex.match(rel) or self.regex.match(name))


def _stat_files(
    folder: str, dir_fd: int | None, audio: list[str], names: set[str]
) -> dict[str, FoundFile]:
    """Stat the audio files of one folder; ``names`` is its listing (for sidecars).

    Names are stat'ed relative to the open folder (``dir_fd``): the kernel then resolves
    one path component instead of the whole path (a quarter off each ``stat`` on Linux).
    """
    prefix = folder + os.sep
    audio = sorted(audio)  # sorted runs make the walk's final sort almost free
    paths = [prefix + name for name in audio]
    stat = os.stat
    try:
        if dir_fd is None:
            stats = [stat(path) for path in paths]
        else:
            stats = [stat(name, dir_fd=dir_fd) for name in audio]
    except OSError:  # a dangling link or a file deleted meanwhile: drop just those
        kept = [(n, _stat_or_none(p)) for n, p in zip(audio, paths)]
        audio = [n for n, st in kept if st is not None]
        stats = [st for _, st in kept if st is not None]
        paths = [prefix + name for name in audio]
    has_txt = [name + ".txt" in names for name in audio]
    columns = zip(
        paths,
        [st.st_size for st in stats],
        [st.st_mtime for st in stats],
        [name + ".json" in names for name in audio],
        has_txt,
        _stem_transcripts(audio, names, has_txt),
    )
    # tuple.__new__ builds the named tuples without a Python-level call per file.
    return dict(zip(paths, map(tuple.__new__, repeat(FoundFile), columns)))


def _stem_transcripts(audio: list[str], names: set[str], has_txt: list[bool]) -> list[str]:
    """The ``<stem>.txt``/``<stem>.lab`` name of each audio file ("" for none)."""
    by_stem: dict[str, str] = {}
    for suffix in reversed(STEM_TRANSCRIPT_SUFFIXES):  # the preferred suffix written last
        for name in names:
            if name.endswith(suffix):
                by_stem[name[: -len(suffix)]] = name
    if not by_stem:  # the common case of a folder without transcripts costs one pass
        return [""] * len(audio)
    return [
        "" if txt else by_stem.get(name.rpartition(".")[0] or name, "")
        for name, txt in zip(audio, has_txt)
    ]


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _list_folder(folder: str) -> tuple[os.stat_result, int | None, list[os.DirEntry]]:
    """The folder's own stat, an open descriptor (None where unsupported), its entries."""
    if not _USE_DIR_FD:
        return os.stat(folder), None, list(os.scandir(folder))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with os.scandir(fd) as listing:
            return os.fstat(fd), fd, list(listing)
    except BaseException:
        os.close(fd)
        raise


def walk_audio(
    roots: list[str | Path],
    include: list[str] | tuple[str, ...] = DEFAULT_INCLUDE,
    exclude: list[str] | tuple[str, ...] = (),
) -> list[FoundFile]:
    """Find the audio files under ``roots``, following links, each file once.

    A glob matches either the path relative to its root (``speaker1/*.wav``) or the file
    name (``*.wav``); matching is case-insensitive so that ``.WAV`` files are found too.

    Args:
        roots: folders (or single files) to scan.
        include: globs a file must match.
        exclude: globs that drop a file or a whole folder (``*/tmp`` skips ``a/tmp/``).

    Returns:
        Files sorted by path.

    Raises:
        FileNotFoundError: a root does not exist.
    """
    inc, exc = _Globs(tuple(include)), _Globs(tuple(exclude))
    found: dict[str, FoundFile] = {}
    seen_dirs: set[tuple[int, int]] = set()  # (device, inode): link cycles end here

    def wanted(rel: str, name: str) -> bool:
        if name.endswith(SIDECAR_SUFFIXES) or (not exc.empty and exc.match(rel, name)):
            return False
        return inc.empty or inc.match(rel, name)

    # The common case (extension includes, no excludes) is decided by one endswith.
    fast_suffixes = inc.suffixes if exc.empty and inc.regex is None and not inc.empty else None

    for root in roots:
        root_abs = os.path.abspath(os.fspath(root))
        if not os.path.exists(root_abs):
            raise FileNotFoundError(f"{root}: no such file or folder to scan")
        if not os.path.isdir(root_abs):
            folder, name = os.path.split(root_abs)
            found.update(_stat_files(folder, None, [name], set(os.listdir(folder))))
            continue
        stack = [(root_abs, "")]
        while stack:
            folder, rel_folder = stack.pop()
            depth = len(stack)
            try:
                st, fd, entries = _list_folder(folder)
            except OSError:
                continue  # dangling link to a folder, a link loop, or no right to list it
            try:
                if (st.st_dev, st.st_ino) in seen_dirs:
                    continue
                seen_dirs.add((st.st_dev, st.st_ino))
                subdirs = {e.name for e in entries if e.is_dir(follow_symlinks=True)}
                for name in subdirs:
                    rel = rel_folder + name
                    if exc.empty or not exc.match(rel, name):
                        stack.append((folder + os.sep + name, rel + "/"))
                if fast_suffixes is not None:  # comprehensions: the per-file loop is hot
                    audio = [e.name for e in entries if e.name.lower().endswith(fast_suffixes)]
                else:
                    audio = [e.name for e in entries if wanted(rel_folder + e.name, e.name)]
                if subdirs:
                    audio = [name for name in audio if name not in subdirs]
                if len(stack) > depth + 1:  # this folder's sub-folders, popped in order
                    stack[depth:] = sorted(stack[depth:], reverse=True)
                if audio:
                    names = {entry.name for entry in entries}
                    found.update(_stat_files(folder, fd, audio, names))
            finally:
                if fd is not None:
                    os.close(fd)
    return [found[p] for p in sorted(found)]
