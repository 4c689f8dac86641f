"""Write the synthetic demo corpus: N deterministic 16 kHz mono FLAC clips and their manifest.

Example: audioflow synth data/synth/train --n 256 --seed 1

Clips last 2-4 s and cycle through four classes (tone, chirp, noise, speech); each has a
<file>.json sidecar with its class (speech clips also a <file>.txt transcript). The
manifest is written to OUT/manifest.jsonl.gz. The corpus is built in a temporary folder
and renamed into place, so OUT is either complete or absent. See docs/data.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="folder to create")
    parser.add_argument("--n", type=int, default=256, help="number of clips (default: 256)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    parser.add_argument(
        "--no-manifest", action="store_true", help="do not write OUT/manifest.jsonl.gz"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUT if it exists and is not empty"
    )


def main(args: argparse.Namespace) -> int:
    from audioflow import atomic
    from audioflow.data import scan_state
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    out = Path(args.out).absolute()
    if args.n < 1:
        print(f"synth: --n must be >= 1, got {args.n}", file=sys.stderr)
        return 2
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        print(f"synth: {args.out} exists and is not empty; pass --force to replace it",
              file=sys.stderr)  # fmt: skip
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_folder_beside(out)  # umask's mode, not mkdtemp's 0700
    try:
        write_corpus(tmp, args.n, args.seed)
        if not args.no_manifest:
            # One process: the clips were just written, a pool would cost more than it saves.
            build_manifest([tmp], tmp / "manifest.jsonl.gz", workers=1, progress=False)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
        # The scan state was keyed by the temporary folder, which no longer exists.
        scan_state.forget(tmp / "manifest.jsonl.gz")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"{args.out}: {args.n} clips (seed {args.seed})")
    return 0
