"""Manifest probe throughput and the speed-up of an unchanged rescan.

For each format (16-bit WAV and FLAC by default; Ogg/Vorbis and MP3 on request) writes
N clips (3 s, 16 kHz mono, 500 per folder) into a temporary folder, then, in the same
run and with a warm page cache, times (best of --repeat, the three measurements
interleaved so that load from other processes hits them alike):

1. baseline: a plain serial loop of ``soundfile.info`` over the walked files;
2. full scan: ``build_manifest(reuse=False)`` with its process pool (all CPUs), default
   settings (tail check of compressed files on);
3. unchanged rescan: ``build_manifest`` reusing the manifest of step 2.

Run: .venv/bin/python benchmarks/data_manifest.py [--files 4000] [--formats wav flac ogg mp3]
     [--check-tail]  (full scans also read the last frame of compressed files)
Prints files/s of each and the ratios (targets: full scan >= 2000 files/s on 2 cores,
rescan >= 20x faster than the full scan).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audioflow.data.manifest import build_manifest  # noqa: E402
from audioflow.data.scan import walk_audio  # noqa: E402

SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


def write_files(root: Path, count: int, fmt: str, seconds: float) -> None:
    """``count`` clips; compressed formats are encoded once and copied (encoding is slow)."""
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32)
    first = root / f"first.{fmt}"
    sf.write(first, wav, 16000, subtype=SUBTYPES[fmt])
    data = first.read_bytes()
    first.unlink()
    for i in range(count):
        folder = root / f"spk{i // 500:03d}"  # a realistic tree: 500 files per folder
        folder.mkdir(exist_ok=True)
        (folder / f"utt{i:06d}.{fmt}").write_bytes(data)


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench(
    fmt: str, count: int, seconds: float, repeat: int, check_tail: bool
) -> tuple[float, float]:
    """Print one format's figures; return (full scan files/s, rescan speed-up)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        write_files(root, count, fmt, seconds)
        out = Path(tmp) / "manifest.jsonl.gz"
        files = walk_audio([root])  # also warms the page cache for every timing below
        build_manifest([root], out)
        serial, full, rescan = [], [], []
        for _ in range(repeat):
            serial.append(timed(lambda: [sf.info(f.path) for f in files]))
            full.append(
                timed(lambda: build_manifest([root], out, reuse=False, check_tail=check_tail))
            )
            rescan.append(timed(lambda: build_manifest([root], out)))
        report = build_manifest([root], out)
        assert report.reused == count and report.probed == 0, report
    serial, full, rescan = min(serial), min(full), min(rescan)
    tail = ", --check-tail" if check_tail else ""
    print(f"{count} {fmt.upper()} files of {seconds:g} s{tail}")
    print(f"  serial soundfile.info loop : {serial:7.3f}s  {count / serial:8.0f} files/s")
    print(f"  full scan (pool, probe)    : {full:7.3f}s  {count / full:8.0f} files/s")
    print(f"  unchanged rescan (reuse)   : {rescan:7.3f}s  {count / rescan:8.0f} files/s")
    print(f"  rescan speed-up vs full    : {full / rescan:6.1f}x")
    return count / full, full / rescan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--formats", nargs="+", choices=tuple(SUBTYPES), default=["wav", "flac"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--check-tail", action="store_true", help="full scans also read the last frame"
    )
    args = parser.parse_args()
    print(f"{len(os.sched_getaffinity(0))} CPUs, probe pool of that many processes")
    for fmt in args.formats:
        rate, speedup = bench(fmt, args.files, args.seconds, args.repeat, args.check_tail)
        verdict = "met" if rate >= 2000 and speedup >= 20 else "NOT met"
        print(f"  targets (>= 2000 files/s, rescan >= 20x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
