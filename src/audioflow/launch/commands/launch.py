"""Run a stage command through a launcher (what every workflow rule calls).

Example: audioflow launch --name af-1a2b3c4d-train-1 --log logs/train.log -- run --stage train
The launcher comes from --launcher, else $AUDIOFLOW_LAUNCHER, else `local`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--launcher", default=os.environ.get("AUDIOFLOW_LAUNCHER", "local"))
    parser.add_argument("--name", required=True, help="deterministic job name")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=0, help="GPUs per node")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mem-mb", type=int, default=2000)
    parser.add_argument("--log", type=Path, default=None, help="file receiving the output")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then `audioflow` arguments")


def _fail(message: str) -> int:
    print(f"audioflow launch: {message}", file=sys.stderr)
    return 2


def log_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the job's log file, or None (a missing folder is created)."""
    from audioflow.atomic import blocking_file

    if path.is_dir():
        return f"--log {path}: is a folder; name a file"
    blocking = blocking_file(path)
    if blocking is not None:
        return f"--log {path}: {blocking} is a file, not a folder; choose another log path"
    return None


def main(args: argparse.Namespace) -> int:
    from ..base import JobSpec, JobSpecError, get_launcher

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not rest:
        return _fail("give the command after `--`, e.g. -- run --stage train")
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep:
            return _fail(f"--label {item!r} is not KEY=VALUE")
        labels[key] = value
    problem = log_problem(args.log) if args.log is not None else None
    if problem:
        return _fail(problem)
    try:
        launcher = get_launcher(args.launcher)
    except ValueError as exc:  # unknown launcher: the message lists the valid ones
        return _fail(str(exc))
    try:
        job = JobSpec(
            name=args.name,
            args=rest,
            nodes=args.nodes,
            nproc_per_node=args.nproc_per_node,
            gpus_per_node=args.gpus,
            threads=args.threads,
            mem_mb=args.mem_mb,
            log_path=args.log,
            labels=labels,
        )
        return launcher.launch(job)
    except JobSpecError as exc:
        for line in exc.problems:
            print(f"audioflow launch: {line}", file=sys.stderr)
        return 2
