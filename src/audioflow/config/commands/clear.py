"""Delete XP folders (checkpoints, history, samples), after asking.

Examples:
  audioflow clear 1a2b3c4d            (asks for confirmation)
  audioflow clear 1a2b3c4d 5e6f7a8b --yes

A running XP (one of its locks held) is never deleted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sigs", nargs="+", metavar="SIG", help="signatures of the XPs to delete")
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="accepted for symmetry; not needed"
    )


def confirm(question: str) -> bool:
    """Ask on the terminal; True for y/yes (False at end of input)."""
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def describe(folder: Path) -> str:
    """``<folder> (N files, X MB)``: what a confirmation question shows."""
    count, size = _size(folder)
    return f"{folder} ({count} files, {size / 1e6:.1f} MB)"


def refuse_running(sig: str, folder: Path) -> None:
    """Raises XPLockedError when one of the XP's stages is running."""
    from ..errors import XPLockedError
    from ..lock import held_locks

    if held_locks(folder):
        raise XPLockedError(
            f"XP {sig} is running ({', '.join(held_locks(folder))} lock held); "
            "stop it before clearing"
        )


def delete_xp(sig: str, folder: Path) -> None:
    """Delete an XP folder that no process runs.

    Raises:
        XPLockedError: one of its stages is running (nothing is deleted).
    """
    from ..lock import xp_lock

    refuse_running(sig, folder)
    # Holding the train lock keeps a new run from starting while the folder goes;
    # renaming first means a half-deleted folder never looks like an XP.
    with xp_lock(folder, "train"):
        trash = folder.with_name(f".{sig}.deleting-{os.getpid()}")
        folder.rename(trash)
    shutil.rmtree(trash)


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, report
    from ..folder import xp_from_sig

    status = 0
    for sig in args.sigs:
        try:
            xp = xp_from_sig(sig)
            sig, folder = xp.sig, xp.folder  # "1a2b3c4d/" as completion types it: 1a2b3c4d
            refuse_running(sig, folder)
        except ConfigError as exc:
            status = report(exc, "audioflow clear")
            continue
        if not args.yes and not confirm(f"delete {describe(folder)}? [y/N] "):
            print(f"kept {sig} (answer y, or pass --yes)")
            continue
        try:
            delete_xp(sig, folder)
        except ConfigError as exc:
            status = report(exc, "audioflow clear")
            continue
        print(f"deleted {sig}")
    if status:
        print("audioflow clear: some XPs were not deleted", file=sys.stderr)
    return status
