"""List the XPs of the current XP root: one line per XP with its signature, status,
epoch, best metric and overrides (oldest first).

Status: running (a process holds one of its locks), done (all optim.epochs epochs in its
history), partial (some epochs or a checkpoint) or new.
The XP root comes from the team/cluster (AUDIOFLOW_TEAM, AUDIOFLOW_CLUSTER,
AUDIOFLOW_XP_DIR); see docs/config.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="accepted for symmetry; not needed"
    )


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, report
    from ..layout import CONFIG_FILE, OVERRIDES_FILE, xps_dir
    from ..status import format_best, read_status
    from ..teams import xp_root

    try:
        root = xps_dir(xp_root())
    except ConfigError as exc:
        return report(exc, "audioflow ls")
    folders = [p for p in root.glob("*") if (p / CONFIG_FILE).is_file()] if root.is_dir() else []
    if not folders:
        print(f"no XPs under {root}", file=sys.stderr)
        return 0
    folders.sort(key=lambda p: ((p / CONFIG_FILE).stat().st_mtime, p.name))
    print(f"{'SIG':<9} {'STATUS':<8} {'EPOCH':>7}  {'BEST':<24} OVERRIDES")
    for folder in folders:
        state = read_status(folder)
        try:
            overrides = json.loads((folder / OVERRIDES_FILE).read_text())
        except (OSError, ValueError):
            overrides = ["?"]
        epoch = f"{state.epoch}/{state.epochs}" if state.epochs is not None else str(state.epoch)
        best = format_best(state.best)
        print(f"{folder.name:<9} {state.status:<8} {epoch:>7}  {best:<24} {' '.join(overrides)}")
    return 0
