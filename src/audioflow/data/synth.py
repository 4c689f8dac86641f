"""The synthetic demo corpus: short FLAC files of four sound classes with sidecar labels.

Each file is drawn from its own generator seeded with ``(seed, index)``, so a corpus is
the same on every machine and a file does not depend on how many others are written.
Classes (``<file>.json`` holds ``{"class": ...}``):

- ``tone``: a harmonic tone with vibrato and an attack/decay envelope;
- ``chirp``: an exponential frequency sweep;
- ``noise``: band-limited noise bursts;
- ``speech``: a buzzy source through moving formants (vowel sweeps); its vowel
  sequence is written to ``<file>.txt`` as a stand-in transcript.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
CLASSES = ("tone", "chirp", "noise", "speech")
# First two formant frequencies (Hz) of a few vowels, after Peterson & Barney.
_VOWELS = {"a": (730, 1090), "e": (530, 1840), "i": (270, 2290), "o": (570, 840), "u": (300, 870)}


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    attack = int(n * rng.uniform(0.02, 0.15))
    release = int(n * rng.uniform(0.1, 0.4))
    env = np.ones(n)
    env[:attack] = np.linspace(0.0, 1.0, attack)
    env[n - release :] = np.linspace(1.0, 0.0, release) ** 2
    return env


def _tone(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f0 = rng.uniform(110, 660)
    vibrato = 1 + rng.uniform(0.002, 0.02) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / SAMPLE_RATE
    harmonics = rng.integers(2, 8)
    wav = sum(np.sin(k * phase) / k ** rng.uniform(0.8, 2.0) for k in range(1, harmonics + 1))
    return wav * _envelope(len(t), rng)


def _chirp(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f_start, f_end = rng.uniform(80, 1000), rng.uniform(500, 6000)
    if rng.random() < 0.5:
        f_start, f_end = f_end, f_start
    freq = f_start * (f_end / f_start) ** (t / t[-1])
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * _envelope(len(t), rng)


def _noise(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(t)
    size = 1 << (n - 1).bit_length()  # a power of two: FFTs of odd lengths are much slower
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    low = rng.uniform(100, 3000)
    spectrum[(freqs < low) | (freqs > low * rng.uniform(1.5, 4))] = 0
    wav = np.fft.irfft(spectrum, size)[:n]
    gate = np.zeros(n)
    for _ in range(rng.integers(2, 6)):
        start, length = rng.integers(0, n), int(rng.uniform(0.1, 0.6) * SAMPLE_RATE)
        gate[start : start + length] = 1.0
    # 25 ms moving average (O(n) via a cumulative sum) softens the gate edges.
    width = 400
    padded = np.concatenate([np.zeros(width), gate])
    gate = (np.cumsum(padded)[width:] - np.cumsum(padded)[:-width]) / width
    return wav / (np.abs(wav).max() + 1e-9) * gate


def _speech(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    n = len(t)
    vowels = list(rng.choice(list(_VOWELS), size=rng.integers(2, 5)))
    # Formant tracks glide linearly between successive vowel targets.
    anchors = np.linspace(0, n - 1, len(vowels))
    f1 = np.interp(np.arange(n), anchors, [_VOWELS[v][0] for v in vowels])
    f2 = np.interp(np.arange(n), anchors, [_VOWELS[v][1] for v in vowels])
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wav = np.zeros(n)
    # Formants move slowly: their gains are computed every 10 ms and interpolated, with
    # the same weights for every harmonic (one interpolation per harmonic cost 40 % of a
    # clip); harmonic k's phasor is the fundamental's times harmonic k-1's (a sine per
    # harmonic cost another 40 %).
    grid = np.arange(0, n, 160)
    at = np.minimum(np.arange(n) / 160, len(grid) - 1)
    low = np.minimum(at.astype(int), len(grid) - 2) if len(grid) > 1 else np.zeros(n, int)
    frac = at - low
    fundamental = np.exp(1j * phase)
    harmonic = np.ones(n, dtype=complex)
    for k in range(1, int(4000 / f0.max()) + 1):  # source harmonics up to ~4 kHz
        harmonic *= fundamental
        fk = k * f0[grid]
        gain = sum(1 / (1 + ((fk - f[grid]) / 90.0) ** 2) for f in (f1, f2)) / k**0.5
        if len(grid) > 1:
            gain = gain[low] * (1 - frac) + gain[low + 1] * frac
        wav += gain * harmonic.imag
    return wav * _envelope(n, rng), " ".join(vowels)


def synth_clip(seed: int, index: int) -> tuple[np.ndarray, str, str | None]:
    """One clip of the corpus.

    Args:
        seed: corpus seed.
        index: clip number; the class cycles through CLASSES.

    Returns:
        ``(wav, class, text)``: float32 mono samples at 16 kHz (2-4 s, peak 0.5-0.9),
        the class name, and a transcript for ``speech`` clips (else None).
    """
    rng = np.random.default_rng([seed % 2**63, index])
    label = CLASSES[index % len(CLASSES)]
    t = np.arange(int(rng.uniform(2.0, 4.0) * SAMPLE_RATE)) / SAMPLE_RATE
    text = None
    if label == "tone":
        wav = _tone(t, rng)
    elif label == "chirp":
        wav = _chirp(t, rng)
    elif label == "noise":
        wav = _noise(t, rng)
    else:
        wav, text = _speech(t, rng)
    wav = wav / (np.abs(wav).max() + 1e-9) * rng.uniform(0.5, 0.9)
    return wav.astype(np.float32), label, text


FIXED_MTIME = 1_600_000_000  # 2020-09-13, any constant does


def write_corpus(out: str | Path, n: int, seed: int) -> list[Path]:
    """Write ``n`` clips as ``out/<index>_<class>.flac`` with ``.json`` (and ``.txt``).

    Returns:
        The audio files written, in index order.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(n):
        wav, label, text = synth_clip(seed, index)
        path = out / f"{index:05d}_{label}.flac"
        sf.write(path, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        path.with_name(path.name + ".json").write_text(json.dumps({"class": label}) + "\n")
        if text is not None:
            path.with_name(path.name + ".txt").write_text(text + "\n")
        # A fixed mtime makes the corpus, and so its manifest, byte-identical on every
        # rebuild: DVC sees the same hash and reruns nothing downstream.
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        written.append(path)
    return written
