"""The `audioflow` command: one sub-command per module, imported only when used.

Each entry maps a sub-command to the module that implements it and a one-line help.
A command module has a docstring (shown by --help), ``add_arguments(parser)`` and
``main(args) -> int``; it imports heavy libraries inside ``main`` only. A module whose
``INTERMIXED`` names its list of positional arguments accepts them between options too
(``audioflow sig A=1 --config-dir DIR B=2``).
Modules are imported lazily so that light commands (sig, info, ls) never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

COMMANDS: dict[str, tuple[str, str]] = {
    "sig": ("audioflow.config.commands.sig", "print the signature of an XP"),
    "info": ("audioflow.config.commands.info", "show an XP: overrides, delta, status, metrics"),
    "ls": ("audioflow.config.commands.ls", "list XPs: sig, overrides, status, epoch, best"),
    "clear": ("audioflow.config.commands.clear", "delete an XP folder"),
    "run": ("audioflow.solvers.commands.run", "train an XP (whole loop or one stage)"),
    "export": ("audioflow.solvers.commands.export", "export an XP's best model as a package"),
    "codec": ("audioflow.solvers.commands.codec", "encode/decode audio with a codec package"),
    "asr": ("audioflow.solvers.commands.asr", "transcribe audio files with a speech recognizer"),
    "manifest": ("audioflow.data.commands.manifest", "scan audio folders into a manifest"),
    "synth": ("audioflow.data.commands.synth", "write the synthetic demo corpus"),
    "launch": ("audioflow.launch.commands.launch", "run a stage command through a launcher"),
    "k8s": ("audioflow.launch.commands.k8s", "render Kubernetes manifests"),
    "report": ("audioflow.workflow.commands.report", "write an XP's HTML report (or several)"),
}


def _load(name: str):
    return importlib.import_module(COMMANDS[name][0])


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen sub-command's module is imported."""
    parser = argparse.ArgumentParser(prog="audioflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name in COMMANDS:
        if name == chosen:
            module = _load(name)
            cmd = sub.add_parser(name, help=COMMANDS[name][1], description=module.__doc__)
            module.add_arguments(cmd)
            cmd.set_defaults(_main=module.main, _module=module.__name__)
        else:
            sub.add_parser(name, help=COMMANDS[name][1], add_help=False)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised where the program is so that cleanups (temporary files) run."""


_OWNER_PID = os.getpid()


def _terminate(signum, _frame):
    if os.getpid() != _OWNER_PID:
        # A forked worker (probe pool, DataLoader) inherited this handler: die as before,
        # quietly, and let the command that owns it report.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--"]:  # launchers separate the command from torchrun's options
        argv = argv[1:]
    parser = build_parser(argv)
    args, rest = parser.parse_known_args(argv)
    positional = getattr(sys.modules.get(getattr(args, "_module", "")), "INTERMIXED", None)
    if rest and positional and not any(a.startswith("-") for a in rest):
        getattr(args, positional).extend(rest)  # overrides given after an option
    elif rest:
        parser.parse_args(argv)  # argparse's own message and exit status for the rest
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2
    name = f"audioflow {args.command}"
    # SIGTERM's default kills at once: no `finally` runs, so a stopped command would leave
    # its temporary files and folders behind. Commands that forward or handle signals
    # themselves (launchers, `run -d N`) install their own handlers over this one.
    main_thread = threading.current_thread() is threading.main_thread()
    global _OWNER_PID
    _OWNER_PID = os.getpid()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`audioflow ls | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Terminated:
        print(f"{name}: terminated", file=sys.stderr)
        return 143
    except OSError as exc:
        if exc.filename is None:
            raise
        # A path the command cannot create, read or write: name it, no traceback.
        print(f"{name}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The ``audioflow`` console command: :func:`main`, then an exit without teardown."""
    from audioflow.quick_exit import exit_now

    exit_now(main())


if __name__ == "__main__":  # how torchrun starts stage workers: python -m audioflow.cli
    entry()
