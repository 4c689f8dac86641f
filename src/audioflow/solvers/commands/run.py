"""Train an XP: the whole loop, or one stage of one epoch.

  audioflow run solver=compression/debug optim.lr=1e-4          # every epoch, every stage
  audioflow run -d 2 solver=compression/debug                   # 2 processes (torchrun)
  audioflow run solver=compression/debug --stage valid --epoch 3
  audioflow run solver=my_solver --config-dir ./my_configs      # a solver of your own

Resumes from the XP's latest checkpoint. Config errors exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from audioflow.config import layout
from audioflow.config.layout import STAGES


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", help="your config folder, searched before the built-in one")
    parser.add_argument(
        "--accept-drift", action="store_true", help="accept a changed config in an existing XP"
    )
    parser.add_argument(
        "-d", "--nproc", type=int, default=1, help="processes on this machine (torchrun)"
    )
    parser.add_argument("--stage", choices=STAGES, help="run only this stage (needs --epoch)")
    parser.add_argument("--epoch", type=int, help="epoch of --stage (from 1)")
    parser.add_argument(
        "--expect-sig",
        metavar="SIG",
        help="refuse to run unless the overrides sign as SIG (workflow stage jobs)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' lines
    _options(parser)
    # REMAINDER, re-parsed in main: options may come after overrides (`run A=1 -d 2 B=2`)
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="Hydra overrides, e.g. optim.lr=1e-4"
    )


def _reparse(args: argparse.Namespace) -> argparse.Namespace:
    """Options found among the overrides, parsed over those given before them."""
    parser = argparse.ArgumentParser(prog="audioflow run")
    _options(parser)
    parser.add_argument("overrides", nargs="*")
    parser.set_defaults(**{k: v for k, v in vars(args).items() if k != "overrides"})
    return parser.parse_intermixed_args(args.overrides)


def _torchrun(args: argparse.Namespace) -> int:
    """Re-run this command under ``torchrun --standalone`` with ``args.nproc`` processes."""
    import subprocess

    argv = list(args.overrides)
    if args.config_dir:
        argv += ["--config-dir", args.config_dir]
    if args.accept_drift:
        argv.append("--accept-drift")
    if args.stage:
        argv += ["--stage", args.stage, "--epoch", str(args.epoch)]
    if args.expect_sig:
        argv += ["--expect-sig", args.expect_sig]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={args.nproc}", "-m", "audioflow.cli", "run", *argv]
    proc = subprocess.Popen(cmd)

    def forward(signum, _frame):  # a stopped `audioflow run -d N` stops its workers too
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    return proc.wait()


def _error(message: str, code: int) -> int:
    print(f"audioflow run: {message}", file=sys.stderr)
    return code


def main(args: argparse.Namespace) -> int:
    from audioflow.atomic import DiskFullError
    from audioflow.config import signature
    from audioflow.config.errors import ConfigError
    from audioflow.config.folder import sig_mismatch
    from audioflow.config.layout import is_signature

    args = _reparse(args)
    if (args.stage is None) != (args.epoch is None):
        return _error("--stage and --epoch go together (e.g. --stage train --epoch 3)", 2)
    if args.epoch is not None and args.epoch < 1:
        return _error(f"--epoch {args.epoch}: epochs count from 1", 2)
    if args.nproc < 1:
        return _error(f"--nproc {args.nproc}: must be at least 1", 2)
    if args.expect_sig is not None and not is_signature(args.expect_sig):
        return _error(f"--expect-sig {args.expect_sig}: not a signature (8 hex characters)", 2)
    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        if args.expect_sig is not None:  # refused here, not once per spawned worker
            try:
                sig = signature(args.overrides, args.config_dir)
            except ConfigError as exc:
                return _error(str(exc), exc.exit_code)
            if sig != args.expect_sig:
                return _error(sig_mismatch(sig, args.expect_sig), 2)
        return _torchrun(args)
    if args.config_dir:
        config_dir = Path(args.config_dir).resolve()
        if not config_dir.is_dir():
            return _error(f"--config-dir {args.config_dir}: no such folder", 2)
        sys.path.insert(0, str(config_dir))  # solver classes may live beside their configs
    try:
        return _run(args)
    except (ConfigError, DiskFullError) as exc:  # one line, exit 2: retrying cannot help
        return _error(str(exc), exc.exit_code)


def _run(args: argparse.Namespace) -> int:
    from audioflow.config import get_xp
    from audioflow.config.errors import ConfigError
    from audioflow.config.lock import xp_lock
    from audioflow.config.xp import set_current_xp

    xp = get_xp(
        args.overrides,
        config_dir=args.config_dir,
        accept_drift=args.accept_drift,
        expect_sig=args.expect_sig,
    )
    epochs = int(xp.cfg.optim.epochs)
    if args.epoch is not None and args.epoch > epochs:
        _forget_new_xp(xp)
        return _error(f"--epoch {args.epoch}: this XP has optim.epochs={epochs}", 2)
    rank = int(os.environ.get("RANK", "0"))
    set_current_xp(xp)
    lock_name = "train" if args.stage in (None, "train") else args.stage
    # one process per XP run holds the OS lock: rank 0 (flock is per open file)
    lock = xp_lock(xp.folder, lock_name) if rank == 0 else _nolock()
    with lock:
        try:
            return _solve(xp, args)
        except ConfigError:
            if rank == 0:
                _forget_new_xp(xp)
            raise


# What a new XP's folder holds before its first stage writes anything.
_NEW_XP_FILES = {
    layout.CONFIG_FILE,
    layout.OVERRIDES_FILE,
    layout.DELTA_FILE,
    layout.MUTEX_FILE,
    layout.LOCKS_DIR,
}


def _forget_new_xp(xp) -> None:
    """Remove the folder this run created for an XP whose config the solver refused, so
    that `audioflow ls` does not list an XP that never ran; anything else is kept."""
    import shutil

    if not xp.created:
        return
    names = {p.name for p in xp.folder.iterdir()}
    logs = {n for n in names if n.startswith("solver") and n.endswith(".log")}
    if names - logs <= _NEW_XP_FILES:
        shutil.rmtree(xp.folder, ignore_errors=True)


def _nolock():
    from contextlib import nullcontext

    return nullcontext()


def _solve(xp, args: argparse.Namespace) -> int:
    from audioflow.config.errors import ConfigError

    from ..base import NonFiniteLossError
    from ..checkpoint import CheckpointError
    from ..registry import SolverNotFoundError, get_solver_class

    try:
        solver_cls = get_solver_class(str(xp.cfg.solver))
    except SolverNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    solver = solver_cls(xp.cfg)
    try:
        if args.stage is None:
            solver.run()
        else:
            solver.run_stage(args.stage, args.epoch)
    except (CheckpointError, NonFiniteLossError) as exc:
        solver.logger.error("%s", exc)
        return _error(str(exc), 1)
    return 0
