"""Write the synthetic demo corpus: N deterministic 16 kHz mono FLAC clips and their manifest.

Example: audioflow synth data/synth/train --n 256 --seed 1
         audioflow synth data/speech/test --kind speech --voices test --n 200 --seed 3

--kind sounds (default): clips of 2-4 s cycling through four classes (tone, chirp,
noise, speech); each has a <file>.json sidecar with its class (speech clips also a
<file>.txt transcript). --kind speech: digit strings and short sentences spoken by
espeak-ng (apt-get install -y espeak-ng) with several voices, speeds and pitches, light
noise, each with a <stem>.txt transcript; --voices test uses voices held out from the
train set. The manifest is written to OUT/manifest.jsonl.gz. The corpus is built in a
temporary folder and renamed into place, so OUT is either complete or absent. See
docs/data.md.
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
        "--kind",
        choices=("sounds", "speech"),
        default="sounds",
        help="sounds: the four synthetic classes; speech: espeak-ng utterances",
    )
    parser.add_argument(
        "--voices",
        choices=("train", "test"),
        default="train",
        help="speech: the voice set (test: voices held out from train; default train)",
    )
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
    from audioflow.data.speech_synth import SpeechSynthError, require_espeak, write_speech_corpus
    from audioflow.data.synth import write_corpus

    out = Path(args.out).absolute()
    if args.n < 1:
        print(f"synth: --n must be >= 1, got {args.n}", file=sys.stderr)
        return 2
    speech = args.kind == "speech"
    if speech:
        try:
            require_espeak()
        except SpeechSynthError as err:
            print(f"synth: {err}", file=sys.stderr)
            return 2
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
        print(f"synth: {args.out} exists and is not empty; pass --force to replace it",
              file=sys.stderr)  # fmt: skip
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_folder_beside(out)  # umask's mode, not mkdtemp's 0700
    try:
        if speech:
            write_speech_corpus(tmp, args.n, args.seed, args.voices)
        else:
            write_corpus(tmp, args.n, args.seed)
        if not args.no_manifest:
            # One process: the clips were just written, a pool would cost more than it saves.
            build_manifest(
                [tmp], tmp / "manifest.jsonl.gz", workers=1, progress=False, require_text=speech
            )
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
        # The scan state was keyed by the temporary folder, which no longer exists.
        scan_state.forget(tmp / "manifest.jsonl.gz")
    except SpeechSynthError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"synth: {err}", file=sys.stderr)
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    what = f"{args.voices} voices, " if speech else ""
    print(f"{args.out}: {args.n} {args.kind} clips ({what}seed {args.seed})")
    return 0
