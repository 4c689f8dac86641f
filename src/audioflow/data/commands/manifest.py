"""Scan audio folders into a gzipped JSONL manifest (one line per file) and a rejects file.

Example: audioflow manifest /data/speech -o data/speech/manifest.jsonl.gz
         audioflow manifest --layout librispeech /data/LibriSpeech/dev-clean -o dev.jsonl.gz

Headers are probed in parallel processes; sidecar <file>.json fields and a transcript
(<file>.txt, else <stem>.txt or <stem>.lab, as "text") are merged into each line.
--layout imports a speech corpus by its own index files instead (librispeech, ljspeech,
commonvoice, kaldi): one line per utterance, and every utterance without a transcript
is a reject. Rerunning with the same output reuses the
entries of files whose size and mtime did not change. Unreadable files (empty,
truncated, not audio, unsupported) are listed with a reason in the rejects file
(default: beside the manifest) and never stop the scan. See docs/data.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from audioflow.data.corpora import LAYOUTS

    parser.add_argument("roots", nargs="+", metavar="ROOT", help="folders or files to scan")
    parser.add_argument(
        "--layout",
        choices=["folder", *LAYOUTS],
        default="folder",
        help="folder: scan audio files (default); else import ROOT as that corpus layout",
    )
    parser.add_argument(
        "--split", help="the part of the corpus to import (commonvoice: the tsv, default train)"
    )
    parser.add_argument(
        "--require-text",
        action="store_true",
        help="folder scans: a file without a transcript is a reject (a speech corpus)",
    )
    parser.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl.gz)")
    parser.add_argument(
        "--rejects", help="rejects file (default: <manifest>.rejects.jsonl beside the manifest)"
    )
    parser.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help="only scan files matching GLOB (repeatable; default: audio extensions)",
    )
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip files/folders"
    )
    parser.add_argument(
        "--previous", help="manifest to reuse unchanged entries from (default: --output)"
    )
    parser.add_argument("--full", action="store_true", help="probe every file again, reuse none")
    parser.add_argument("-j", "--workers", type=int, help="probe processes (default: all CPUs)")
    parser.add_argument(
        "--check-tail",
        action="store_true",
        help="also read the last frame of new FLAC/Ogg/MP3 files to reject truncated ones "
        "(slower; add --full to check the files already in the manifest too)",
    )


def main(args: argparse.Namespace) -> int:
    from audioflow.data.manifest import build_manifest

    if args.workers is not None and args.workers < 1:
        print(f"--workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    if args.layout != "folder":
        return _import(args)
    if args.split is not None:
        print("manifest: --split needs --layout (a corpus with splits)", file=sys.stderr)
        return 2
    try:
        report = build_manifest(
            args.roots,
            args.output,
            include=args.include,
            exclude=args.exclude,
            rejects=args.rejects,
            previous=args.previous,
            reuse=not args.full,
            workers=args.workers,
            check_tail=args.check_tail,
            require_text=args.require_text,
        )
    except FileNotFoundError as err:
        print(f"manifest: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"manifest: {err}", file=sys.stderr)
        return 1
    how = (
        "unchanged since the last scan"
        if report.unchanged
        else f"{report.reused} reused, {report.probed} probed"
    )
    return _print_report(report, how)


def _import(args: argparse.Namespace) -> int:
    from audioflow.data.corpora import import_corpus
    from audioflow.data.corpora.common import LayoutError

    folder_only = {
        "--include": args.include,
        "--exclude": args.exclude,
        "--previous": args.previous,
        "--check-tail": args.check_tail,
        "--require-text": args.require_text,
    }
    unused = [flag for flag, value in folder_only.items() if value]
    if len(args.roots) != 1 or unused:
        why = f"{', '.join(unused)} only apply to folder scans" if unused else "give one ROOT"
        print(f"manifest: --layout {args.layout}: {why}", file=sys.stderr)
        return 2
    try:
        report = import_corpus(
            args.layout,
            args.roots[0],
            args.output,
            split=args.split,
            rejects=args.rejects,
            workers=args.workers,
        )
    except (FileNotFoundError, LayoutError) as err:
        print(f"manifest: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"manifest: {err}", file=sys.stderr)
        return 1
    return _print_report(report, f"{args.layout} layout, {report.probed} audio files probed")


def _print_report(report, how: str) -> int:
    print(
        f"{report.output}: {report.entries} files ({how})"
        f", {len(report.rejects)} rejected in {report.seconds:.2f}s"
    )
    if report.rejects:
        for path, reason in report.rejects[:5]:
            print(f"  rejected {path}: {reason}", file=sys.stderr)
        more = len(report.rejects) - 5
        tail = f" (+{more} more)" if more > 0 else ""
        print(f"  all rejects{tail}: {report.rejects_file}", file=sys.stderr)
    return 0
