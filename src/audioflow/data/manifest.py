"""Build, write and read manifests: one JSON line per audio file, gzipped, sorted by path.

A manifest stores each path relative to its own folder when the file lies under it (so
a dataset folder can move or be mapped to another mount as a whole) and absolute
otherwise. Writing is deterministic (sorted lines, gzip mtime 0) so an unchanged scan
gives a byte-identical file that DVC and the workflow see as unchanged.
"""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from audioflow import atomic
from audioflow.data import scan_state
from audioflow.data.probe import CORE_KEYS, probe_chunk, read_sidecars
from audioflow.data.scan import DEFAULT_INCLUDE, FoundFile, walk_audio

NO_TRANSCRIPT = (
    "no transcript: no <stem>.txt, <stem>.lab or <file>.txt beside it (or it is empty); "
    "add one or leave the file out with --exclude"
)
# Below this many files to probe, a process pool costs more than it saves.
_MIN_FILES_FOR_POOL = 256
_CORE_SET = frozenset(CORE_KEYS)
# One encoder for every line: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


@dataclass
class ManifestReport:
    """What a scan did.

    Attributes:
        output: the manifest written.
        entries: number of files in the manifest.
        probed: files whose headers were read this time.
        reused: files taken from the previous manifest (size and mtime unchanged).
        rejects: ``(path, reason)`` of every file left out.
        seconds: wall time of the scan.
        rejects_file: where the rejects were written (None if not written).
        unchanged: the walk matched the last scan of this output exactly, so nothing was
            read beyond file metadata and nothing was written.
    """

    output: Path
    entries: int = 0
    probed: int = 0
    reused: int = 0
    rejects: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    rejects_file: Path | None = None
    unchanged: bool = False


def default_rejects_path(output: str | Path) -> Path:
    """``x/manifest.jsonl.gz`` -> ``x/manifest.rejects.jsonl``."""
    output = Path(output)
    name = output.name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return output.with_name(name + ".rejects.jsonl")


def _relative_to(path: str, folder: str) -> str:
    prefix = folder.rstrip(os.sep) + os.sep
    return path[len(prefix) :] if path.startswith(prefix) else path


def write_jsonl(path: str | Path, rows: list[dict], relative_key: str | None = "path") -> None:
    """Write rows as JSON lines atomically (temp file, fsync, rename); gzip if ``.gz``.

    Args:
        path: destination; its folder is created if missing.
        rows: dicts written in the given order.
        relative_key: key holding a path to store relative to the file's folder.
    """
    path = Path(path).absolute()
    folder = str(path.parent)
    lines = []
    for row in rows:
        if relative_key and relative_key in row:
            row = {**row, relative_key: _relative_to(row[relative_key], folder)}
        lines.append(_encode(row))
    data = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
    if path.suffix == ".gz":
        # filename="" and mtime=0 keep the gzip header free of the temp name and the clock.
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
            gz.write(data)
        data = buffer.getvalue()
    atomic.write_bytes(path, data)


def read_manifest(path: str | Path) -> list[dict]:
    """Read a manifest; relative paths are resolved against the manifest's folder.

    Args:
        path: a ``.jsonl.gz`` (or plain ``.jsonl``) manifest.

    Returns:
        The entries, each with an absolute ``path``.

    Raises:
        FileNotFoundError: no such manifest.
        ValueError: a line is not a JSON object with a ``path`` (message names file and line).
    """
    path = Path(path).absolute()
    opener = gzip.open if path.suffix == ".gz" else open
    folder = str(path.parent)
    with opener(path, "rt", encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    try:
        # One decode call for the whole file: per-line json.loads costs several times more.
        entries = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        entries = None
    if entries is None or len(entries) != len(lines) or not all(map(_is_entry, entries)):
        bad = next((i for i, line in enumerate(lines) if not _is_entry(_loads(line))), 0)
        raise ValueError(
            f"{path}: line {bad + 1} is not a manifest line (a JSON object with a 'path'); "
            "rebuild it with `audioflow manifest`"
        )
    prefix = folder.rstrip(os.sep) + os.sep
    for entry in entries:
        if not entry["path"].startswith(os.sep):  # os.path.isabs/join cost more per line
            entry["path"] = prefix + entry["path"]
    return entries


def _read_jsonl(path: Path) -> list[dict] | None:
    """A small JSONL file (rejects) with paths made absolute, or None if unreadable."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            row["path"] = os.path.join(path.absolute().parent, row["path"])
        return rows
    except (ValueError, OSError, TypeError, KeyError):
        return None


def _loads(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _is_entry(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("path"), str)


def _probe_all(
    todo: list[FoundFile], workers: int, check_tail: bool, progress
) -> list[tuple[str, dict | None, str | None]]:
    """Probe files in a process pool, in chunks so each round trip carries many files."""
    if workers <= 1 or len(todo) < _MIN_FILES_FOR_POOL:
        results = []
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            results.extend(probe_chunk(chunk, check_tail))
            progress.update(len(chunk))
        return results
    # ~8 chunks per worker balances load while keeping per-chunk overhead negligible.
    size = max(16, min(2048, len(todo) // (workers * 8)))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    # fork starts workers in milliseconds; spawn would re-import soundfile in each.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    results = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(partial(probe_chunk, check_tail=check_tail), c): c for c in chunks}
        for future in as_completed(futures):
            results.extend(future.result())
            progress.update(len(futures[future]))
    return results


def probe_files(
    found: list[FoundFile], workers: int | None = None, check_tail: bool = False
) -> list[tuple[str, dict | None, str | None]]:
    """Probe audio files (a process pool for many), without a progress bar.

    Returns:
        ``(path, entry, reason)`` per file, in no particular order.
    """
    from tqdm import tqdm

    with tqdm(total=len(found), disable=True) as bar:
        return _probe_all(found, workers or _default_workers(), check_tail, bar)


def _unchanged_report(output: Path, rejects_file: Path, digest: str) -> ManifestReport | None:
    """The report of a rescan that found exactly what the last scan of ``output`` found."""
    entries = scan_state.unchanged(output, rejects_file, digest)
    if entries is None:
        return None
    rows = _read_jsonl(rejects_file)
    if rows is None:
        return None
    return ManifestReport(
        output=output,
        entries=entries,
        reused=entries,
        rejects=[(row["path"], row["reason"]) for row in rows],
        rejects_file=rejects_file,
        unchanged=True,
    )


def _split_undecodable(found: list[FoundFile]) -> tuple[list[FoundFile], list[tuple[str, str]]]:
    """Files whose names are not UTF-8 (Python holds them with surrogates), as rejects.

    libsndfile cannot open them and a UTF-8 manifest cannot hold them; the reject shows the
    name with the bad bytes escaped (``caf\\xe9.wav``).
    """
    if all(f.path.isascii() for f in found):
        return found, []
    kept, bad = [], []
    for f in found:
        try:
            f.path.encode("utf-8")
            kept.append(f)
        except UnicodeEncodeError:
            shown = f.path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            bad.append((shown, "bad name: the file name is not valid UTF-8; rename the file"))
    return kept, bad


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def build_manifest(
    roots: list[str | Path],
    output: str | Path,
    *,
    include: list[str] | tuple[str, ...] | None = None,
    exclude: list[str] | tuple[str, ...] = (),
    rejects: str | Path | None = None,
    previous: str | Path | None = None,
    reuse: bool = True,
    workers: int | None = None,
    check_tail: bool = False,
    progress: bool | None = None,
    require_text: bool = False,
) -> ManifestReport:
    """Scan audio folders into a manifest and a rejects file.

    Args:
        roots: folders or files to scan (links are followed).
        output: manifest path (``.jsonl.gz``).
        include: globs of files to scan (default: audio extensions, see ``scan``).
        exclude: globs of files or folders to skip.
        rejects: rejects file (default: ``<output stem>.rejects.jsonl`` beside the manifest).
        previous: manifest whose entries are reused when size and mtime are unchanged
            (default: ``output`` itself when it exists).
        reuse: set False to probe every file again.
        workers: probe processes (default: the CPUs this process may use).
        check_tail: also read the last frame of compressed files, to reject FLAC/Ogg/MP3
            files whose body was cut short (their header is intact).
        progress: show a progress bar (default: when stderr is a terminal).
        require_text: a speech corpus: a file without a transcript (``<stem>.txt``,
            ``<stem>.lab`` or ``<file>.txt``) is a reject instead of an entry.

    Returns:
        A ManifestReport.

    Raises:
        FileNotFoundError: a root does not exist.
        ValueError: no usable audio file was found (no manifest is written then).
    """
    from tqdm import tqdm

    began = time.perf_counter()
    output = Path(output).absolute()
    for target, what in ((output, "the manifest"), (rejects, "the rejects file")):
        if target is not None and Path(target).is_dir():
            raise ValueError(f"{target}: is a folder; give the path of {what} to write")
    found = walk_audio(roots, DEFAULT_INCLUDE if include is None else include, exclude)
    if not found:
        raise ValueError(
            f"no audio files under {', '.join(map(str, roots))} "
            f"(include={list(include or DEFAULT_INCLUDE)[:4]}..., exclude={list(exclude)})"
        )
    rejects_file = Path(rejects).absolute() if rejects is not None else default_rejects_path(output)
    previous = Path(previous).absolute() if previous is not None else output
    options = {
        "include": list(DEFAULT_INCLUDE if include is None else include),
        "exclude": list(exclude),
        "check_tail": check_tail,
    }
    if require_text:  # only when set, so the digest of earlier scans stays valid
        options["require_text"] = True
    seen = scan_state.fingerprint(found, options)
    if reuse and previous == output:
        shortcut = _unchanged_report(output, rejects_file, seen.digest)
        if shortcut is not None:
            shortcut.seconds = time.perf_counter() - began
            return shortcut
    found, bad_names = _split_undecodable(found)
    old: dict[str, dict] = {}
    if reuse and previous.exists():
        try:
            old = {e["path"]: e for e in read_manifest(previous)}
        except (ValueError, OSError, EOFError):
            old = {}  # a broken previous manifest only costs a full probe

    report = ManifestReport(output=output)
    entries: dict[str, dict] = {}
    todo: list[FoundFile] = []
    reused_rejects: list[tuple[str, str]] = []
    for f in found:
        prev = old.get(f.path)
        if prev is not None and prev.get("size") == f.size and prev.get("mtime") == f.mtime:
            if not (f.has_json or f.has_txt or f.stem_text) and prev.keys() <= _CORE_SET:
                entries[f.path] = prev  # the common case, kept cheap: no sidecar then or now
                continue
            entry = {k: prev[k] for k in CORE_KEYS if k in prev}
            try:
                # Sidecars are re-read: editing labels must not require touching the audio.
                entry.update(read_sidecars(f.path, f.has_json, f.has_txt, f.stem_text))
            except ValueError as err:
                reused_rejects.append((f.path, str(err)))
                continue
            entries[f.path] = entry
        else:
            todo.append(f)
    report.reused = len(entries)
    report.probed = len(todo)

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(
        total=len(found),
        initial=len(found) - len(todo),
        unit="file",
        desc="probe",
        disable=not show,
    )
    with bar:
        results = _probe_all(todo, workers or _default_workers(), check_tail, bar)
    for path, entry, reason in results:
        if entry is not None:
            entries[path] = entry
        else:
            report.rejects.append((path, reason))
    if require_text:
        for path in [p for p, e in entries.items() if not e.get("text")]:
            del entries[path]
            report.rejects.append((path, NO_TRANSCRIPT))
    report.rejects.extend(reused_rejects)
    report.rejects.extend(bad_names)
    report.rejects.sort()
    report.entries = len(entries)

    report.rejects_file = rejects_file
    reject_rows = [{"path": p, "reason": r} for p, r in report.rejects]
    if not (report.rejects_file.exists() and _read_jsonl(report.rejects_file) == reject_rows):
        write_jsonl(report.rejects_file, reject_rows)
    if not entries:
        raise ValueError(
            f"none of the {len(found)} files found is usable; reasons in {report.rejects_file}"
        )
    rows = [entries[p] for p in sorted(entries)]
    # An unchanged scan leaves the file alone: same bytes, no write, no fsync.
    if not (previous == output and rows == list(old.values())):
        write_jsonl(output, rows)
    scan_state.record(output, rejects_file, seen, len(rows))
    report.seconds = time.perf_counter() - began
    return report
