"""Speech recognition with a trained recognizer: transcribe audio files.

  audioflow asr transcribe --model //reference/demo_asr FILE... [--beam N] [--device D]

Prints one line per file, "FILE<TAB>transcript" (files at another sample rate or with
several channels are resampled and mixed down). --model takes a package folder written
by `audioflow export SIG -o DIR`, //reference/NAME (a published package) or //sig/SIG
(an XP's best state). See docs/tasks/asr.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="asr_command", metavar="ACTION", required=True)
    transcribe = sub.add_parser("transcribe", help="print the transcript of audio files")
    transcribe.add_argument(
        "--model", required=True, help="package folder, //reference/NAME or //sig/SIG"
    )
    transcribe.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    transcribe.add_argument(
        "--beam", type=int, default=1, help="CTC beam width (default 1: greedy decoding)"
    )
    transcribe.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def _fail(message: str, code: int) -> int:
    print(f"audioflow asr: {message}", file=sys.stderr)
    return code


def load_recognizer(ref: str, device: str = "cpu"):
    """The recognizer of a package folder, ``//reference/NAME`` or ``//sig/SIG``.

    Raises:
        PackageError: not an ASR package (or unreadable); ConfigError: unknown XP, not an
        ASR XP, no reference dir; CheckpointError: the XP has no best state yet.
    """

    from audioflow.config.paths import SIG_PREFIX
    from audioflow.models.asr_package import (
        SOLVER,
        LoadedRecognizer,
        build_recognizer,
        load_asr_package,
    )

    if not ref.startswith(SIG_PREFIX):
        return load_asr_package(ref, device)
    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError
    from audioflow.solvers import checkpoint

    xp = xp_from_sig(ref[len(SIG_PREFIX) :])
    if str(xp.cfg.get("solver")) != SOLVER:
        raise ConfigError(f"{ref}: XP {xp.sig} trains solver={xp.cfg.get('solver')}, not asr")
    best = checkpoint.load_best(xp)
    state = best["state"]
    model, tokenizer = build_recognizer(xp.cfg, state["model"], state["tokenizer"], ref)
    metadata = {"signature": xp.sig, "best": {"epoch": best.get("epoch"), "value": best["value"]}}
    return LoadedRecognizer(model.to(device), tokenizer, int(xp.cfg.sample_rate), metadata, ref)


def _transcribe(args: argparse.Namespace) -> int:
    import soundfile as sf

    from audioflow.data.audio import read_segment

    if args.beam < 1:
        return _fail(f"--beam must be >= 1, got {args.beam}", 2)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return _fail(f"--device {args.device}: no CUDA device here; use --device cpu", 2)
    # every file is checked before the model loads: one bad name costs no time
    for name in args.files:
        try:
            sf.info(name)
        except (RuntimeError, OSError) as err:
            reason = "no such file" if not Path(name).exists() else str(err).split(": ")[-1]
            return _fail(f"{name}: cannot read audio ({reason})", 2)
    recognizer = load_recognizer(args.model, args.device)
    for name in args.files:
        wav = read_segment(name, 0.0, None, recognizer.sample_rate, 1)[0]  # (T,)
        (text,) = recognizer.transcribe([wav], beam_size=args.beam)
        print(f"{name}\t{text}")
    return 0


def main(args: argparse.Namespace) -> int:
    from audioflow.config.errors import ConfigError, report
    from audioflow.models.package import PackageError
    from audioflow.solvers.checkpoint import CheckpointError

    try:
        return _transcribe(args)
    except ConfigError as exc:
        return report(exc, "audioflow asr")
    except PackageError as exc:
        return _fail(str(exc), exc.exit_code)
    except CheckpointError as exc:
        return _fail(str(exc), 1)
