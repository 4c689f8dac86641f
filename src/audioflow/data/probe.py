"""Probe one audio file: header fields from libsndfile, sidecar metadata, or a reject reason.

Probing reads headers only. A truncated PCM file (WAV, AIFF, AU, W64, RF64) is caught
from the header alone: libsndfile logs a declared size larger than the file. A compressed
file (FLAC, Ogg, MP3) cut short keeps a valid header; the optional tail check seeks to its
last frame, which fails or comes back empty then (a few hundred microseconds per file).
"""

from __future__ import annotations

import json
import os
import re

import soundfile as sf

from audioflow.data.scan import UNSUPPORTED_EXTENSIONS, FoundFile

# Manifest keys owned by the probe; sidecar metadata cannot override them.
CORE_KEYS = (
    "path", "duration", "sample_rate", "channels", "frames", "size", "mtime", "format", "subtype",
)  # fmt: skip
# Formats that store a frame count in the header; a truncated body is caught by a
# one-frame read at the end instead of the data-chunk size check of PCM containers.
_COMPRESSED_FORMATS = {"FLAC", "OGG", "MP3", "MPEG"}
# libsndfile logs "<size field> : <declared> (should be <what the file holds>)" when a PCM
# container's header promises more bytes than the file has: the whole-file chunk
# (RIFF/RIFX/riff/FORM, RF64's "Riff size") or the audio chunk (WAV data, AIFF SSND, AU
# "Data Size"). Other fields' "should be" lines say nothing about truncation.
_SIZE_SHORT = re.compile(
    r"^\s*(RIFF|RIFX|riff|FORM|Riff size|data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)",
    re.MULTILINE,
)
# Streaming writers (ffmpeg to a pipe, some recorders) cannot seek back to fill in the sizes
# and leave these placeholders; libsndfile then reads the data that is there.
_SIZE_PLACEHOLDER = 0x7FFFF000
# First bytes of the containers libsndfile reads; tells "truncated audio" from "not audio".
_MAGIC = {
    b"RIFF": "WAV", b"RIFX": "WAV", b"RF64": "RF64", b"fLaC": "FLAC", b"OggS": "OGG",
    b"ID3": "MP3", b"FORM": "AIFF", b".snd": "AU", b"caff": "CAF", b"riff": "W64",
}  # fmt: skip


def _truncation(log: str) -> str | None:
    """The reject reason if libsndfile's header log shows a PCM file cut short."""
    for field, declared, held in _SIZE_SHORT.findall(log):
        declared, held = int(declared), int(held)
        # One byte of slack: writers often leave out the pad byte of an odd-sized chunk.
        if held + 1 < declared < _SIZE_PLACEHOLDER:
            return f"truncated: header declares {declared} bytes ({field}), file has {held}"
    return None


def _container_of(path: str) -> str | None:
    """Name of the audio container the first bytes announce, or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3"  # bare MPEG frame sync, no ID3 tag
    return None


def _open_error_reason(path: str, size: int, err: Exception) -> str:
    message = str(err).split(": ", 1)[-1].strip()
    container = _container_of(path)
    if container is None:
        return f"not audio: libsndfile says '{message}'"
    lowered = message.lower()
    if size >= 512 and ("unimplemented" in lowered or "not supported" in lowered):
        return f"unsupported: {container} encoding libsndfile cannot decode ('{message}')"
    return f"truncated: {container} header unreadable ('{message}')"


def read_sidecars(path: str, has_json: bool, has_txt: bool, stem_text: str = "") -> dict:
    """Metadata from ``<file>.json`` (an object) and a transcript (as ``text``).

    Args:
        path: the audio file.
        has_json: read ``<path>.json``.
        has_txt: read ``<path>.txt``.
        stem_text: name of a ``<stem>.txt``/``<stem>.lab`` transcript in the same folder,
            read when there is no ``<path>.txt``.

    Returns:
        The sidecar fields, ``text`` last so a transcript file wins over a ``text`` JSON key.

    Raises:
        ValueError: a sidecar is not valid UTF-8 JSON object / text (message names it).
    """
    meta: dict = {}
    if has_json:
        name = os.path.basename(path) + ".json"
        try:
            with open(path + ".json", encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, OSError) as err:
            raise ValueError(f"sidecar {name}: invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"sidecar {name}: must hold a JSON object, not {type(data).__name__}")
        meta.update((k, v) for k, v in data.items() if k not in CORE_KEYS)
    transcript = path + ".txt" if has_txt else None
    if transcript is None and stem_text:
        transcript = os.path.join(os.path.dirname(path), stem_text)
    if transcript is not None:
        try:
            with open(transcript, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError) as err:
            name = os.path.basename(transcript)
            raise ValueError(f"sidecar {name}: unreadable ({err})") from None
        meta["text"] = _lab_words(text) if transcript.endswith(".lab") else text.strip()
    return meta


# One HTK label line: start and end times (100 ns units), then the label.
_HTK_LINE = re.compile(r"^\s*\d+\s+\d+\s+(\S+)")


def _lab_words(text: str) -> str:
    """The transcript of a ``.lab`` file: plain words (MFA), or the labels of an HTK
    label file (``start end word`` lines, silences ``sil``/``sp`` left out)."""
    lines = [line for line in text.splitlines() if line.strip()]
    matches = [_HTK_LINE.match(line) for line in lines]
    if not lines or not all(matches):
        return " ".join(text.split())
    return " ".join(m.group(1) for m in matches if m.group(1).lower() not in ("sil", "sp"))


def probe_file(found: FoundFile, check_tail: bool = False) -> tuple[dict | None, str | None]:
    """Probe one file.

    Args:
        found: the file and its stat fields from the walk.
        check_tail: read the last frame of compressed files to catch truncation.

    Returns:
        ``(entry, None)`` for a usable file (absolute path; sidecar fields merged) or
        ``(None, reason)`` where reason starts with empty/truncated/not audio/unsupported/
        sidecar.
    """
    path = found.path
    if found.size == 0:
        return None, "empty: 0 bytes"
    ext = os.path.splitext(path)[1].lower()
    if ext in UNSUPPORTED_EXTENSIONS:
        return None, f"unsupported: libsndfile cannot read '{ext}' files; convert them to FLAC"
    try:
        with sf.SoundFile(path) as snd:
            frames, rate, channels = snd.frames, snd.samplerate, snd.channels
            fmt, subtype = snd.format, snd.subtype
            if frames <= 0:
                return None, "empty: the header declares no audio frames"
            if fmt in _COMPRESSED_FORMATS:
                if check_tail:
                    snd.seek(frames - 1)
                    if len(snd.read(1, dtype="float32")) != 1:
                        return None, f"truncated: the last of {frames} declared frames is missing"
            else:
                short = _truncation(snd.extra_info)
                if short:
                    return None, short
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        if isinstance(err, sf.LibsndfileError) and "Error opening" in str(err):
            return None, _open_error_reason(path, found.size, err)
        return None, f"truncated: cannot read to the end ({err})"
    try:
        meta = read_sidecars(path, found.has_json, found.has_txt, found.stem_text)
    except ValueError as err:
        return None, str(err)
    entry = {
        "path": path,
        "duration": frames / rate,
        "sample_rate": rate,
        "channels": channels,
        "frames": frames,
        "size": found.size,
        "mtime": found.mtime,
        "format": fmt,
        "subtype": subtype,
    }
    entry.update(meta)
    return entry, None


def probe_chunk(chunk: list[FoundFile], check_tail: bool = False) -> list[tuple]:
    """Probe a chunk of files in one worker call (amortises the process-pool round trip).

    Returns:
        ``(path, entry, reason)`` per file, in the chunk's order.
    """
    return [(f.path, *probe_file(f, check_tail)) for f in chunk]
