"""Show an XP: signature, folder, overrides, delta, status, last metrics, log and samples.

Examples:
  audioflow info 1a2b3c4d                 (an existing XP, by signature)
  audioflow info -f 1a2b                  (the same, by a unique prefix)
  audioflow info solver=compression/debug optim.lr=1e-4   (by overrides; nothing is created)
  audioflow info -t 1a2b                  (tail its log; follows it while the XP runs)
  audioflow info -t 1a2b --rank 1         (the log of rank 1)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

INTERMIXED = "target"

FOLLOW_PAUSE = 0.2  # seconds between two looks at a followed log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="*", metavar="SIG|OVERRIDE", help="a signature (or prefix) or overrides"
    )
    parser.add_argument(
        "-f", "--from", dest="from_sig", metavar="SIG", help="the XP of this signature or prefix"
    )
    parser.add_argument(
        "-t",
        "--tail",
        action="store_true",
        help="print the end of the XP's log; follow it while the XP runs",
    )
    parser.add_argument("--rank", type=int, default=0, help="whose log -t shows (default 0)")
    parser.add_argument("-n", "--lines", type=int, default=20, help="lines -t prints first")
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="config folder searched before config/"
    )


def _metrics(section: dict) -> str:
    parts = []
    for key, value in section.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, int | str | bool):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def _is_handle(target: list[str]) -> bool:
    """One word of hex characters: a signature or a prefix of one, not an override."""
    from ..layout import SIG_RE

    return (
        len(target) == 1
        and 0 < len(target[0].rstrip("/")) <= 8
        and bool(SIG_RE.match(target[0].rstrip("/").ljust(8, "0")))
    )


def listening_page(folder: Path, samples: str = "samples") -> Path | None:
    """The listening page of the XP's last generate epoch (``samples``: generate.path)."""
    from ..layout import samples_pages

    pages = samples_pages(folder, samples)
    return pages[-1][1] if pages else None


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, report
    from ..folder import xp_folder, xp_from_sig
    from ..handles import compose_checked, find_sig
    from ..signing import signed_delta
    from ..teams import use_config_dir

    try:
        use_config_dir(args.config_dir)
        if args.from_sig or _is_handle(args.target) or args.tail:
            if args.from_sig and args.target:
                raise ConfigError("give -f SIG or a target, not both")
            handle = args.from_sig or (args.target[0] if len(args.target) == 1 else "")
            if not handle:
                raise ConfigError("-t tails an existing XP's log: give its signature (or prefix)")
            xp = xp_from_sig(find_sig(handle))
            sig, overrides, delta, folder = xp.sig, xp.overrides, xp.delta, xp.folder
            samples = str(xp.cfg.get("generate", {}).get("path", "samples"))
        else:
            compose_checked(args.target, args.config_dir)
            sig, delta = signed_delta(args.target, args.config_dir)
            overrides, folder = args.target, xp_folder(sig, args.config_dir)
            samples = "samples"
        if args.tail:
            return tail(folder, args.rank, args.lines)
    except ConfigError as exc:
        return report(exc, "audioflow info")
    _describe(sig, overrides, delta, folder, samples)
    return 0


def _describe(sig: str, overrides: list[str], delta: list, folder: Path, samples: str) -> None:
    from ..layout import CONFIG_FILE, STAGES, solver_log_name
    from ..status import format_best, read_status

    exists = (folder / CONFIG_FILE).is_file()
    print(f"sig        {sig}")
    print(f"folder     {folder}" + ("" if exists else "  (not created yet)"))
    print(f"overrides  {' '.join(overrides) or '(none: the defaults)'}")
    print("delta      " + ("(none)" if not delta else ""))
    for key, value in delta:
        print(f"  {key} = {json.dumps(value)}")
    if not exists:
        print("status     new")
        return
    state = read_status(folder)
    of = f"/{state.epochs}" if state.epochs is not None else ""
    running = f" ({', '.join(state.running)})" if state.running else ""
    print(f"status     {state.status}{running}, epoch {state.epoch}{of}")
    if state.nonfinite:
        print(f"  not finite: {state.nonfinite}")
    for stage in STAGES:
        if isinstance(state.last.get(stage), dict):
            print(f"  {stage:<9}{_metrics(state.last[stage])}")
    print(f"best       {format_best(state.best)}")
    log = folder / solver_log_name(0)
    print(f"log        {log}" + ("" if log.is_file() else "  (none yet)"))
    page = listening_page(folder, samples)
    if page is not None:
        print(f"listen     {page}")


def tail(folder: Path, rank: int, lines: int) -> int:
    """Print the last ``lines`` lines of a rank's log, then follow it while the XP runs.

    Raises:
        ConfigError: that rank has no log.
    """
    from ..errors import ConfigError
    from ..layout import solver_log_name
    from ..lock import held_locks

    log = folder / solver_log_name(rank)
    if not log.is_file():
        have = sorted(p.name for p in folder.glob("solver*.log"))
        raise ConfigError(f"no log {log} (rank {rank}); logs here: {', '.join(have) or 'none yet'}")
    with open(log, errors="replace") as handle:
        sys.stdout.write("".join(handle.readlines()[-lines:] if lines > 0 else []))
        sys.stdout.flush()
        # Follow while a stage of the XP runs, as `tail -f` would, and stop with it.
        while held_locks(folder):
            chunk = handle.read()
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            else:
                time.sleep(FOLLOW_PAUSE)
        sys.stdout.write(handle.read())
    return 0
