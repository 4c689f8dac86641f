"""Reading a 1 s segment by seeking vs decoding the whole 60 s file, per format.

For each format a 60 s file (16 kHz mono by default) is written; in the same run we time
``audioflow.data.audio.read_segment`` of 1 s at random offsets against the baseline a
naive loader uses: ``soundfile.read`` of the whole file, then slicing.

Run: .venv/bin/python benchmarks/data_segment.py [--duration 60] [--repeat 20]
     [--rate 16000] [--channels 1]
Prints milliseconds per read and the ratio per format (target >= 10x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audioflow.data.audio import read_segment, write_audio_file  # noqa: E402

SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


def per_call(fn, repeat: int) -> float:
    fn()  # warm-up: page cache, resampler, decoder tables
    began = time.perf_counter()
    for i in range(repeat):
        fn(i)
    return (time.perf_counter() - began) / repeat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--channels", type=int, default=1)
    args = parser.parse_args()
    rate, channels = args.rate, args.channels
    rng = np.random.default_rng(0)
    t = np.arange(int(args.duration * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    wav = np.stack([tone + 0.05 * rng.standard_normal(len(t)) for _ in range(channels)], 1)
    wav = wav.astype("f4")
    offsets = rng.uniform(0, args.duration - 1.0, size=args.repeat + 1)
    print(
        f"1 s segment from a {args.duration:.0f} s {rate / 1000:g} kHz {channels}-channel file,"
        f" {args.repeat} reads each"
    )
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for ext, subtype in SUBTYPES.items():
            path = str(Path(tmp) / f"long.{ext}")
            write_audio_file(path, wav, rate, subtype=subtype)  # in blocks: long Ogg

            def seek(i=0, path=path):
                return read_segment(path, offsets[i], 1.0, rate, channels, rate)

            def full(i=0, path=path):
                data, _ = sf.read(path, dtype="float32", always_2d=True)
                start = int(offsets[i] * rate)
                return data[start : start + rate]

            t_seek, t_full = per_call(seek, args.repeat), per_call(full, args.repeat)
            worst = min(worst, t_full / t_seek)
            print(
                f"{ext:5s} seek {t_seek * 1e3:7.2f} ms   full decode {t_full * 1e3:8.2f} ms"
                f"   ratio {t_full / t_seek:6.1f}x"
            )
    print(f"worst ratio {worst:.1f}x (target >= 10x): {'met' if worst >= 10 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
