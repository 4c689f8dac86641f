"""Manifest probe throughput and the speed-up of an unchanged rescan.

For each format (16-bit WAV and FLAC by default; Ogg/Vorbis and MP3 on request) writes
N clips (3 s, 16 kHz mono, 500 per folder, dated a day back as a dataset on disk is) into
a temporary folder, then, in the same run, times (best of --repeat, the three
measurements interleaved so that load from other processes hits them alike):

1. baseline: a plain serial loop of ``soundfile.info`` over the walked files;
2. full scan: ``build_manifest(reuse=False)`` with its process pool (all CPUs), default
   settings (no tail check unless --check-tail);
3. unchanged rescan: ``build_manifest`` with the manifest of step 2 as its output.

Each is timed with the file data in two cache states:

- warm: every audio file's pages in the page cache (the probe costs syscalls only;
  the hardest case for the rescan ratio);
- data-cold: the audio files' pages evicted (posix_fadvise DONTNEED) before every
  timing, metadata left cached: a dataset bigger than RAM, rescanned while its inodes
  are still cached. Headers then come from the disk; the rescan reads none.

--drop-caches (root on Linux) adds "cold": all caches dropped before every timing, the
metadata too, as after a reboot.

Run: .venv/bin/python benchmarks/data_manifest.py [--files 4000] [--formats wav flac ogg mp3]
     [--check-tail] [--drop-caches]
Prints files/s of each and the ratios (targets: full scan >= 2000 files/s on 2 cores,
rescan >= 20x faster than the full scan).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
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
    day_ago = time.time() - 86400
    for i in range(count):
        folder = root / f"spk{i // 500:03d}"  # a realistic tree: 500 files per folder
        folder.mkdir(exist_ok=True)
        path = folder / f"utt{i:06d}.{fmt}"
        path.write_bytes(data)
        os.utime(path, (day_ago, day_ago))
    os.sync()  # dirty pages cannot be evicted


def evict_data(paths: list[str]) -> None:
    """Drop the files' pages from the page cache (their inodes stay cached)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_all_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(prepare, fn) -> float:
    prepare()
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench(fmt: str, args: argparse.Namespace, modes: list[str]) -> dict[str, tuple[float, float]]:
    """Print one format's figures; return {mode: (full scan files/s, rescan speed-up)}."""
    count, found = args.files, {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        write_files(root, count, fmt, args.seconds)
        out = Path(tmp) / "manifest.jsonl.gz"
        paths = [f.path for f in walk_audio([root])]
        build_manifest([root], out)
        for mode in modes:
            prepare = {
                "warm": lambda: [sf.info(p) for p in paths],  # pages and inodes in cache
                "data-cold": lambda: evict_data(paths),
                "cold": drop_all_caches,
            }[mode]
            full_scan = partial(
                build_manifest, [root], out, reuse=False, check_tail=args.check_tail
            )
            serial, full, rescan = [], [], []
            for _ in range(args.repeat):
                serial.append(timed(prepare, lambda: [sf.info(p) for p in paths]))
                full.append(timed(prepare, full_scan))
                # The rescan after a full scan: what a user's second run does.
                rescan.append(
                    timed(prepare, lambda: build_manifest([root], out, check_tail=args.check_tail))
                )
            report = build_manifest([root], out, check_tail=args.check_tail)
            assert report.unchanged and report.entries == count and report.probed == 0, report
            serial, full, rescan = min(serial), min(full), min(rescan)
            tail = ", --check-tail" if args.check_tail else ""
            print(f"{count} {fmt.upper()} files of {args.seconds:g} s{tail}, {mode}")
            print(f"  serial soundfile.info loop : {serial:7.3f}s  {count / serial:8.0f} files/s")
            print(f"  full scan (pool, probe)    : {full:7.3f}s  {count / full:8.0f} files/s")
            print(f"  unchanged rescan           : {rescan:7.3f}s  {count / rescan:8.0f} files/s")
            print(f"  rescan speed-up vs full    : {full / rescan:6.1f}x")
            found[mode] = (count / full, full / rescan)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--formats", nargs="+", choices=tuple(SUBTYPES), default=["wav", "flac"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--check-tail", action="store_true", help="full scans also read the last frame"
    )
    parser.add_argument(
        "--drop-caches", action="store_true", help="also time with all caches dropped (root)"
    )
    args = parser.parse_args()
    modes = ["warm", "data-cold"] + (["cold"] if args.drop_caches else [])
    print(f"{len(os.sched_getaffinity(0))} CPUs, probe pool of that many processes")
    for fmt in args.formats:
        for mode, (rate, speedup) in bench(fmt, args, modes).items():
            verdict = "met" if rate >= 2000 and speedup >= 20 else "NOT met"
            print(f"  {fmt} {mode}: targets (>= 2000 files/s, rescan >= 20x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
