"""The spoken demo corpus: digit strings and short sentences spoken by espeak-ng.

espeak-ng (the Debian package ``espeak-ng``) speaks each utterance with one of several
voices (an accent plus a voice variant), a speed and a pitch; light noise and a little
silence are added and the audio is resampled to 16 kHz. Each clip ``<index>_<kind>.flac``
has its transcript in ``<index>_<kind>.txt`` (the stem layout of speech corpora) and the
speaking parameters in ``<file>.json``.

The voices are split in two disjoint sets: ``train`` voices for the train and valid
splits, ``test`` voices (variants never heard in training) for the held-out evaluation.
A clip depends only on ``(seed, index, voice set)``, so a corpus is the same on every
machine with the same espeak-ng.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
ESPEAK = "espeak-ng"
INSTALL_HINT = "espeak-ng is not installed: run `apt-get install -y espeak-ng` (as root)"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# A small sentence grammar: verb, the, colour, object (125 sentences, 15 words).
VERBS = ("open", "close", "find", "move", "take")
COLOURS = ("red", "green", "blue", "white", "black")
OBJECTS = ("door", "box", "light", "window", "car")
# A voice is an accent and a voice variant (espeak-ng's "+variant": pitch range, formants,
# breathiness). The test variants never occur in the train set: held-out speakers.
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
VARIANTS = {
    "train": (
        "m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f3", "f5", "klatt", "klatt3",
        "Alex", "Andrea", "david", "belinda", "iven", "linda",
    ),
    "test": ("m5", "m8", "f4", "klatt2", "Andy", "annie"),
}  # fmt: skip
SPEEDS = (130, 190)  # words per minute
PITCHES = (25, 75)  # espeak's 0-99 scale
SENTENCE_SHARE = 0.25  # the rest are digit strings
MAX_DIGITS = 6
FIXED_MTIME = 1_600_000_000  # the sound corpus's constant: rebuilds are byte-identical


class SpeechSynthError(RuntimeError):
    """espeak-ng is missing or failed (the message says what to do)."""


def utterance_text(rng: np.random.Generator) -> tuple[str, str]:
    """``(kind, text)``: a digit string of 1-6 digits or a four-word sentence."""
    if rng.random() < SENTENCE_SHARE:
        words = (rng.choice(VERBS), "the", rng.choice(COLOURS), rng.choice(OBJECTS))
        return "sentence", " ".join(str(w) for w in words)
    count = int(rng.integers(1, MAX_DIGITS + 1))
    return "digits", " ".join(str(rng.choice(DIGITS)) for _ in range(count))


def clip_settings(seed: int, index: int, voices: str) -> dict:
    """What clip ``index`` says and how (no audio): kind, text, voice, speed, pitch, noise."""
    if voices not in VARIANTS:
        raise ValueError(f"voices={voices!r}: choose one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng([seed % 2**63, index, list(VARIANTS).index(voices)])
    kind, text = utterance_text(rng)
    accent = ACCENTS[int(rng.integers(len(ACCENTS)))]
    variant = VARIANTS[voices][int(rng.integers(len(VARIANTS[voices])))]
    return {
        "kind": kind,
        "text": text,
        "voice": f"{accent}+{variant}",
        "speed": int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)),
        "pitch": int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
        "snr_db": float(rng.uniform(20.0, 40.0)),
        "gain_db": float(rng.uniform(-12.0, -3.0)),
        "lead_s": float(rng.uniform(0.05, 0.3)),
        "tail_s": float(rng.uniform(0.05, 0.3)),
        "noise_seed": int(rng.integers(2**31)),
    }


def require_espeak() -> str:
    """The espeak-ng executable.

    Raises:
        SpeechSynthError: it is not installed (the message says how to install it).
    """
    found = shutil.which(ESPEAK)
    if found is None:
        raise SpeechSynthError(INSTALL_HINT)
    return found


def speak(text: str, voice: str, speed: int, pitch: int, executable: str = ESPEAK):
    """espeak-ng's rendering of ``text``: ``(float32 samples, sample rate)``.

    Raises:
        SpeechSynthError: espeak-ng failed (its message included).
    """
    run = subprocess.run(
        [executable, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        timeout=60,
    )
    if run.returncode != 0 or not run.stdout:
        why = run.stderr.decode(errors="replace").strip() or f"exit {run.returncode}"
        raise SpeechSynthError(f"espeak-ng -v {voice} failed on {text!r}: {why}")
    # espeak-ng streams its WAV with placeholder sizes; libsndfile reads what is there.
    wav, rate = sf.read(io.BytesIO(run.stdout), dtype="float32")
    return wav, rate


def render(settings: dict, executable: str = ESPEAK) -> np.ndarray:
    """The 16 kHz clip of ``settings`` (``clip_settings``): speech, silences, noise."""
    import torch

    from audioflow.data.audio import resample

    wav, rate = speak(
        settings["text"], settings["voice"], settings["speed"], settings["pitch"], executable
    )
    wav = resample(torch.from_numpy(wav)[None], rate, SAMPLE_RATE)[0].numpy()
    wav = wav / (np.abs(wav).max() + 1e-9) * 10 ** (settings["gain_db"] / 20)
    lead, tail = (int(settings[k] * SAMPLE_RATE) for k in ("lead_s", "tail_s"))
    wav = np.concatenate([np.zeros(lead), wav, np.zeros(tail)])
    speech_rms = np.sqrt(np.mean(wav[lead : len(wav) - tail] ** 2))
    noise = np.random.default_rng(settings["noise_seed"]).standard_normal(len(wav))
    wav = wav + noise * speech_rms * 10 ** (-settings["snr_db"] / 20)
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


def write_speech_corpus(
    out: str | Path, n: int, seed: int, voices: str = "train", workers: int = 2
) -> list[Path]:
    """Write ``n`` clips as ``out/<index>_<kind>.flac`` with ``.txt`` and ``.json``.

    Args:
        out: folder (created if missing).
        n: number of clips.
        seed: corpus seed.
        voices: ``train`` or ``test`` (held-out voices).
        workers: espeak-ng processes run at once.

    Returns:
        The audio files written, in index order.

    Raises:
        SpeechSynthError: espeak-ng is missing or fails.
        ValueError: unknown ``voices``.
    """
    executable = require_espeak()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = [clip_settings(seed, index, voices) for index in range(n)]

    def one(index: int) -> Path:
        clip = settings[index]
        path = out / f"{index:05d}_{clip['kind']}.flac"
        sf.write(path, render(clip, executable), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        path.with_suffix(".txt").write_text(clip["text"] + "\n")
        info = {k: clip[k] for k in ("kind", "voice", "speed", "pitch", "snr_db")}
        path.with_name(path.name + ".json").write_text(json.dumps(info, sort_keys=True) + "\n")
        for written in (path, path.with_suffix(".txt"), path.with_name(path.name + ".json")):
            os.utime(written, (FIXED_MTIME, FIXED_MTIME))
        return path

    # espeak-ng runs as a subprocess: threads overlap its runs without extra processes.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(n)))
