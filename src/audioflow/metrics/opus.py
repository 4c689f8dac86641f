"""Opus as the reference a codec is compared with: code audio with libopus and back.

``opusenc --hard-cbr`` (constant bitrate, the fairest match for a codec whose bitrate is
fixed) and ``opusdec`` from Debian's opus-tools. libopus codes 6 to 510 kbps: a codec
below 6 kbps is compared with Opus at 6 kbps, the nearest it reaches. The decoded audio
is aligned to the original by the lag of their cross-correlation peak (opusdec drops the
pre-skip already; resampling may add a few samples), so metrics see no delay.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

MIN_KBPS = 6.0
MAX_KBPS = 510.0


def available() -> bool:
    """Whether opusenc and opusdec are on PATH."""
    return shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


def nearest_bitrate(kbps: float) -> float:
    """The bitrate libopus reaches nearest to ``kbps`` (clipped to [6, 510], 0.5 steps)."""
    return min(max(round(float(kbps) * 2) / 2, MIN_KBPS), MAX_KBPS)


def align(decoded: np.ndarray, original: np.ndarray, max_lag: int = 2000) -> np.ndarray:
    """``decoded`` (T',) shifted by its cross-correlation peak with ``original`` (T,)."""
    n = len(original)
    padded = np.zeros(n + 2 * max_lag, dtype=np.float64)
    kept = min(len(decoded), n + max_lag)
    padded[max_lag : max_lag + kept] = decoded[:kept]
    corr = np.correlate(padded, original.astype(np.float64), mode="valid")  # lags -L..L
    start = int(np.argmax(corr))
    return padded[start : start + n].astype(np.float32)


def roundtrip(wav: np.ndarray, sample_rate: int, kbps: float) -> np.ndarray:
    """Code mono ``wav`` (T,) with Opus at ``kbps`` (constant bitrate) and decode it.

    Args:
        wav: float audio in [-1, 1].
        sample_rate: its rate; opusdec decodes back to it.
        kbps: target bitrate (see :func:`nearest_bitrate`).

    Returns:
        The decoded audio (T,), aligned to ``wav``.

    Raises:
        FileNotFoundError: opusenc/opusdec are not installed (apt-get install opus-tools).
        subprocess.CalledProcessError: a tool failed.
    """
    if not available():
        raise FileNotFoundError("opusenc/opusdec not found: apt-get install -y opus-tools")
    with tempfile.TemporaryDirectory(prefix="audioflow_opus_") as tmp:
        src, coded, out = (Path(tmp) / name for name in ("in.wav", "coded.opus", "out.wav"))
        sf.write(src, np.clip(wav, -1, 1), sample_rate, subtype="PCM_16")
        rate = f"{nearest_bitrate(kbps):g}"
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("opusenc", "--quiet", "--hard-cbr", "--bitrate", rate, str(src), str(coded))
        run("opusdec", "--quiet", "--rate", str(sample_rate), str(coded), str(out))
        decoded, _ = sf.read(out, dtype="float32", always_2d=True)
    return align(decoded[:, 0], wav)
