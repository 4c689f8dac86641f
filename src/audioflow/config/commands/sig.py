"""Print the signature of the XP defined by OVERRIDES (8 hex characters, as Dora).

Examples:
  audioflow sig solver=compression/debug optim.lr=1e-4
  audioflow sig --config-dir my_configs model=encodec/tiny +label=try2

Checks what `audioflow run` checks of a command line (the team and cluster, every
override, the values): exit status 2, with one line per problem, when one is bad.
"""

from __future__ import annotations

import argparse
from pathlib import Path

INTERMIXED = "overrides"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="Hydra overrides")
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="config folder searched before config/"
    )


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, report
    from ..handles import compose_checked
    from ..signing import signed_delta

    try:
        compose_checked(args.overrides, args.config_dir)
        sig, _ = signed_delta(args.overrides, args.config_dir)
    except ConfigError as exc:
        return report(exc, "audioflow sig")
    print(sig)
    return 0
