"""Manifest probe throughput and the speed-up of an unchanged rescan.

Writes N short audio files (1 s, 16 kHz mono) into a temporary folder, then, in the same
run and with a warm page cache:

1. baseline: a plain serial loop of ``soundfile.info`` over the walked files;
2. full scan: ``build_manifest(reuse=False)`` with the process pool (all CPUs);
3. unchanged rescan: ``build_manifest`` reusing the manifest of step 2.

Run: .venv/bin/python benchmarks/data_manifest.py [--files 4000] [--format wav|flac]
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


def write_files(root: Path, count: int, fmt: str) -> None:
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    for i in range(count):
        folder = root / f"spk{i // 500:03d}"  # a realistic tree: 500 files per folder
        folder.mkdir(exist_ok=True)
        sf.write(folder / f"utt{i:06d}.{fmt}", wav, 16000)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--format", choices=("wav", "flac"), default="wav")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        write_files(root, args.files, args.format)
        out = Path(tmp) / "manifest.jsonl.gz"
        files = walk_audio([root])  # also warms the page cache for every timing below

        serial = best_of(args.repeat, lambda: [sf.info(f.path) for f in files])
        full = best_of(args.repeat, lambda: build_manifest([root], out, reuse=False))
        rescan = best_of(args.repeat, lambda: build_manifest([root], out))
        report = build_manifest([root], out)
        assert report.reused == args.files and report.probed == 0, report

    n = args.files
    print(f"{n} {args.format.upper()} files, {workers} CPUs")
    print(f"serial soundfile.info loop : {serial:7.3f}s  {n / serial:8.0f} files/s")
    print(f"full scan (pool, probe)    : {full:7.3f}s  {n / full:8.0f} files/s")
    print(f"unchanged rescan (reuse)   : {rescan:7.3f}s  {n / rescan:8.0f} files/s")
    print(f"full scan vs serial loop   : {serial / full:6.2f}x")
    print(f"rescan speed-up vs full    : {full / rescan:6.2f}x  (target >= 20x)")
    ok = n / full >= 2000 and full / rescan >= 20
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
