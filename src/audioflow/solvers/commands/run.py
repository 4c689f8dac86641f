"""Train an XP: the whole loop, or one stage of one epoch.

  audioflow run solver=compression/debug optim.lr=1e-4          # every epoch, every stage
  audioflow run -d 2 solver=compression/debug                   # 2 processes (torchrun)
  audioflow run -d solver=compression/debug                     # every local GPU (or 1 on CPU)
  audioflow run solver=compression/debug --stage valid --epoch 3
  audioflow run solver=my_solver --config-dir ./my_configs      # a solver of your own
  audioflow run -f 1a2b3c4d                                     # continue XP 1a2b3c4d
  audioflow run -f 1a2b optim.lr=1e-4                           # a new XP: its overrides + these
  audioflow run --clear --yes solver=compression/debug          # delete the XP, start afresh

Resumes from the XP's latest checkpoint. Every bad input (overrides, team, device, process
count, continue_from file, a checkpoint that no longer fits the model) is one line per
problem and exit status 2, checked before the XP folder is written or workers start.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from audioflow.config.layout import STAGES

ALL_DEVICES = "all"  # `-d` without a number


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", help="your config folder, searched before the built-in one")
    parser.add_argument(
        "--accept-drift", action="store_true", help="accept a changed config in an existing XP"
    )
    parser.add_argument(
        "-d",
        "--nproc",
        nargs="?",
        const=ALL_DEVICES,
        default="1",
        help="processes on this machine (torchrun); alone: one per local GPU, or 1 on CPU",
    )
    parser.add_argument("--stage", choices=STAGES, help="run only this stage (needs --epoch)")
    parser.add_argument("--epoch", type=int, help="epoch of --stage (from 1)")
    parser.add_argument(
        "--expect-sig",
        metavar="SIG",
        help="refuse to run unless the overrides sign as SIG (workflow stage jobs)",
    )
    parser.add_argument(
        "-f",
        "--from",
        dest="from_sig",
        metavar="SIG",
        help="the XP of this signature (or unique prefix): continue it, or with overrides "
        "start a new XP from its overrides plus these",
    )
    parser.add_argument(
        "--clear", action="store_true", help="delete the XP's folder first and start afresh"
    )
    parser.add_argument("-y", "--yes", action="store_true", help="--clear without asking")


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
    parsed = parser.parse_intermixed_args(args.overrides)
    if parsed.nproc != ALL_DEVICES and not parsed.nproc.lstrip("-").isdigit():
        # `-d solver=x`: a bare -d took the override that follows it as its value
        parsed.overrides.insert(0, parsed.nproc)
        parsed.nproc = ALL_DEVICES
    return parsed


def _torchrun(args: argparse.Namespace, nproc: int) -> int:
    """Re-run this command under ``torchrun --standalone`` with ``nproc`` processes."""
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
    # audioflow's torchrun entry keeps a worker's config-error status (2) and prints no
    # ChildFailedError traceback (plain torchrun exits 1 after one).
    cmd = [sys.executable, "-m", "audioflow.launch.torchrun", "--standalone"]
    cmd += [f"--nproc-per-node={nproc}", "-m", "audioflow.cli", "run", *argv]
    proc = subprocess.Popen(cmd)

    def forward(signum, _frame):  # a stopped `audioflow run -d N` stops its workers too
        proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    return proc.wait()


def _error(message: str, code: int) -> int:
    print(f"audioflow run: {message}", file=sys.stderr)
    return code


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def main(args: argparse.Namespace) -> int:
    from audioflow.atomic import DiskFullError
    from audioflow.config.errors import ConfigError, report
    from audioflow.config.layout import is_signature
    from audioflow.config.teams import use_config_dir

    args = _reparse(args)
    if (args.stage is None) != (args.epoch is None):
        return _error("--stage and --epoch go together (e.g. --stage train --epoch 3)", 2)
    if args.epoch is not None and args.epoch < 1:
        return _error(f"--epoch {args.epoch}: epochs count from 1", 2)
    if args.nproc != ALL_DEVICES and int(args.nproc) < 1:
        return _error(f"--nproc {args.nproc}: must be at least 1", 2)
    if args.expect_sig is not None and not is_signature(args.expect_sig):
        return _error(f"--expect-sig {args.expect_sig}: not a signature (8 hex characters)", 2)
    if args.config_dir and not Path(args.config_dir).is_dir():
        return _error(f"--config-dir {args.config_dir}: no such folder", 2)
    # A process that torchrun started for `run -d N` was checked by its parent.
    spawned = "LOCAL_RANK" in os.environ and _world_size() > 1
    try:
        # The user's teams/ first, for every lookup of this process (the XP root, //reference
        # paths); -f may then name the config folder its XP was composed with.
        use_config_dir(args.config_dir)
        if args.from_sig:
            _follow(args)
            use_config_dir(args.config_dir)
        if args.config_dir:
            config_dir = Path(args.config_dir).resolve()
            sys.path.insert(0, str(config_dir))  # solver classes may live beside their configs
        nproc = 1 if spawned else _check(args)
        if nproc > 1:
            return _torchrun(args, nproc)
        return _run(args)
    except DiskFullError as exc:  # one line, exit 2: retrying cannot help
        return _error(str(exc), exc.exit_code)
    except ConfigError as exc:
        if int(os.environ.get("RANK", "0")) != 0:
            return exc.exit_code  # rank 0 says it: one message, not one per process
        return report(exc, "audioflow run")


def _follow(args: argparse.Namespace) -> None:
    """``-f SIG``: take the XP's overrides (plus the extra ones) and config folder."""
    from audioflow.config.handles import find_sig, merge_overrides, recipe

    found = recipe(find_sig(args.from_sig))
    extra = list(args.overrides)
    args.overrides = merge_overrides(found.overrides, extra)
    args.config_dir = args.config_dir or found.config_dir
    args.followed = (found.sig, extra)


def _check(args: argparse.Namespace) -> int:
    """Everything that can be checked before the XP folder is written or workers start.

    Returns:
        The number of processes to run.

    Raises:
        ConfigError: every problem, one line each.
    """
    from audioflow.config.errors import ConfigError
    from audioflow.config.folder import sig_mismatch
    from audioflow.config.handles import compose_checked
    from audioflow.config.signing import signed_delta

    from .. import preflight

    parts = compose_checked(args.overrides, args.config_dir)
    cfg = parts.cfg
    problems = preflight.missing_keys(cfg)
    if problems:
        raise ConfigError(problems)
    nproc = preflight.process_count(args.nproc, str(cfg.device))
    problems = preflight.device_problems(str(cfg.device), nproc)
    problems += preflight.batch_problems(cfg, nproc)
    epochs = int(cfg.optim.epochs)
    if args.epoch is not None and args.epoch > epochs:
        problems.append(f"--epoch {args.epoch}: this XP has optim.epochs={epochs}")
    sig, _ = signed_delta(args.overrides, args.config_dir)
    if args.expect_sig is not None and sig != args.expect_sig:
        problems.append(sig_mismatch(sig, args.expect_sig))
    try:
        preflight.solver_class(cfg)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    preflight.check_xp(
        cfg,
        sig,
        overrides=args.overrides,
        config_dir=args.config_dir,
        accept_drift=args.accept_drift,
        stage=args.stage,
        clear=args.clear,
        yes=args.yes,
    )
    followed = getattr(args, "followed", None)
    if followed:
        old, extra = followed
        if extra:
            print(f"XP {sig}: a new XP from {old} with {' '.join(extra)}", flush=True)
        else:
            print(f"continuing XP {sig}" if sig == old else f"XP {sig} (was {old})", flush=True)
    return nproc


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


def _new_xp_files() -> set[str]:
    """What a new XP's folder holds before its first stage writes anything."""
    from audioflow.config import layout

    return {
        layout.CONFIG_FILE,
        layout.OVERRIDES_FILE,
        layout.CONFIG_DIR_FILE,
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
    if names - logs <= _new_xp_files():
        shutil.rmtree(xp.folder, ignore_errors=True)


def _nolock():
    from contextlib import nullcontext

    return nullcontext()


def _solve(xp, args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from .. import base, preflight
    from ..checkpoint import CheckpointError
    from ..distrib import PeerError

    # A stage that fails honestly (no usable checkpoint, non-finite losses, weights or
    # metrics) is one line and exit status 1; the stage error exists once the solver has it.
    stage_error = getattr(base, "NonFiniteStageError", None)
    failures = (CheckpointError, base.NonFiniteLossError, *([stage_error] if stage_error else []))
    # a valid/evaluate/generate job builds no optimizers (see base.not_training)
    trains = args.stage in (None, "train")
    with nullcontext() if trains else base.not_training():
        solver = preflight.solver_class(xp.cfg)(xp.cfg)
    try:
        if args.stage is None:
            solver.run()
        else:
            solver.run_stage(args.stage, args.epoch)
    except failures as exc:
        solver.logger.error("%s", exc)
        return _error(str(exc), 1)
    except PeerError as exc:  # rank 0 says it on the terminal: one line, not one per rank
        solver.logger.error("%s", exc)
        return exc.exit_code
    return 0
