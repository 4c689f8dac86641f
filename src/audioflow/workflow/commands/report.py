"""Write the static HTML report of one XP, or of several XPs overlaid.

Examples:
  audioflow report 1a2b3c4d                    (writes <xp_root>/xps/1a2b3c4d/report/index.html)
  audioflow report 1a2b3c4d 5e6f -o cmp/       (both XPs' curves on the same charts)

The page needs no network: open it with a browser from the folder it is in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sigs", nargs="+", metavar="SIG", help="signatures of the XPs (or unique prefixes)"
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="report folder (default for one XP: <xp folder>/report; required for several)",
    )


def main(args: argparse.Namespace) -> int:
    from audioflow.config import layout
    from audioflow.config.errors import ConfigError, report
    from audioflow.config.folder import xp_folder
    from audioflow.config.handles import find_sig
    from audioflow.workflow.report_page import load_xp, write_page

    if len(args.sigs) > 1 and args.out is None:
        print("audioflow report: several XPs need -o DIR for the report folder", file=sys.stderr)
        return 2
    try:
        sigs = dict.fromkeys(find_sig(text) for text in args.sigs)
        records = [load_xp(xp_folder(sig)) for sig in sigs]
    except ConfigError as exc:
        return report(exc, "audioflow report")
    out = args.out if args.out is not None else records[0].folder / layout.REPORT_DIR
    page = write_page(records, out)
    print(page)
    return 0
