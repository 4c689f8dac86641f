"""Real audio files for the data tests: every supported format plus broken files."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import soundfile as sf

# name -> (format, subtype, sample_rate, channels, frames)
FORMATS = {
    "pcm16.wav": ("WAV", "PCM_16", 16000, 1, 16000),
    "pcm24.wav": ("WAV", "PCM_24", 44100, 2, 30000),
    "pcm32.wav": ("WAV", "PCM_32", 8000, 1, 12000),
    "float.wav": ("WAV", "FLOAT", 48000, 2, 40000),
    "quad.wav": ("WAV", "PCM_16", 16000, 4, 8000),
    "lossless.flac": ("FLAC", "PCM_16", 22050, 2, 33075),
    "vorbis.ogg": ("OGG", "VORBIS", 16000, 1, 24000),
    "layer3.mp3": ("MP3", "MPEG_LAYER_III", 44100, 2, 44100),
}
# name -> reason prefix the manifest must give
BROKEN = {
    "empty.wav": "empty",
    "header_only.wav": "truncated",
    "cut_body.wav": "truncated",
    "cut_body.flac": "truncated",
    "notes.wav": "not audio",
    "song.m4a": "unsupported",
}


def tone(frames: int, channels: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A distinct sine per channel plus a little noise, float32 (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / sample_rate
    cols = [0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    wav = np.stack(cols, axis=1) + 0.01 * rng.standard_normal((frames, channels))
    return wav.astype(np.float32)


def write_audio(path: Path, fmt: str, subtype: str, rate: int, channels: int, frames: int):
    sf.write(path, tone(frames, channels, rate), rate, format=fmt, subtype=subtype)


def make_corpus(root: Path) -> Path:
    """Write every format in FORMATS (one in a sub-folder), sidecars and BROKEN files."""
    (root / "sub").mkdir()
    for name, spec in FORMATS.items():
        folder = root / "sub" if name == "lossless.flac" else root
        write_audio(folder / name, *spec)
    (root / "pcm16.wav.json").write_text(json.dumps({"speaker": "s1", "weight": 2.0}))
    (root / "pcm16.wav.txt").write_text("hello world\n")
    (root / "vorbis.ogg.json").write_text(json.dumps({"labels": ["tone"], "duration": -1}))
    good = (root / "pcm24.wav").read_bytes()
    (root / "empty.wav").write_bytes(b"")
    (root / "header_only.wav").write_bytes(good[:30])
    (root / "cut_body.wav").write_bytes(good[:5000])
    (root / "cut_body.flac").write_bytes((root / "sub" / "lossless.flac").read_bytes()[:6000])
    (root / "notes.wav").write_text("these are meeting notes, not audio\n" * 20)
    (root / "song.m4a").write_bytes(b"\x00\x00\x00\x18ftypM4A " + bytes(600))
    (root / "readme.md").write_text("not scanned: no audio extension\n")
    return age_tree(root)


def age_tree(root: Path, seconds: float = 3600.0) -> Path:
    """Date every file ``seconds`` back, as a dataset on disk is: a scan trusts old mtimes only."""
    when = time.time() - seconds
    for path in root.rglob("*"):
        os.utime(path, (when, when), follow_symlinks=False)
    return root


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a folder keeping mtimes."""
    shutil.copytree(src, dst, copy_function=shutil.copy2)
    return dst
