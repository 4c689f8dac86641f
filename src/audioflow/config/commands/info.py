"""Show an XP: signature, folder, overrides, delta vs defaults, status and last metrics.

Examples:
  audioflow info 1a2b3c4d                       (an existing XP, by signature)
  audioflow info solver=compression/debug optim.lr=1e-4   (by overrides; nothing is created)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SIG_RE = re.compile(r"^[0-9a-f]{8}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="*", metavar="SIG|OVERRIDE", help="a signature or overrides"
    )
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


def main(args: argparse.Namespace) -> int:
    from ..composition import compose_parts
    from ..errors import ConfigError, report
    from ..folder import CONFIG_FILE, xp_folder, xp_from_sig
    from ..signing import compute_delta, sign
    from ..status import format_best, read_status

    try:
        if len(args.target) == 1 and SIG_RE.match(args.target[0]):
            xp = xp_from_sig(args.target[0])
            sig, overrides, delta, folder = xp.sig, xp.overrides, xp.delta, xp.folder
        else:
            parts = compose_parts(args.target, args.config_dir)
            delta = compute_delta(parts.groups, parts.base, parts.cfg)
            sig, overrides, folder = sign(delta), args.target, xp_folder(sign(delta))
    except ConfigError as exc:
        return report(exc, "audioflow info")

    exists = (folder / CONFIG_FILE).is_file()
    print(f"sig        {sig}")
    print(f"folder     {folder}" + ("" if exists else "  (not created yet)"))
    print(f"overrides  {' '.join(overrides) or '(none: the defaults)'}")
    print("delta      " + ("(none)" if not delta else ""))
    for key, value in delta:
        print(f"  {key} = {json.dumps(value)}")
    if not exists:
        print("status     new")
        return 0
    state = read_status(folder)
    of = f"/{state.epochs}" if state.epochs is not None else ""
    running = f" ({', '.join(state.running)})" if state.running else ""
    print(f"status     {state.status}{running}, epoch {state.epoch}{of}")
    for stage in ("train", "valid", "evaluate", "generate"):
        if isinstance(state.last.get(stage), dict):
            print(f"  {stage:<9}{_metrics(state.last[stage])}")
    print(f"best       {format_best(state.best)}")
    return 0
