"""Errors raised by audioflow.config: each carries one line per problem, ready to print.

Config errors are the user's to fix (a typo in an override, a missing file), so the CLI
prints their lines and exits with status 2, the code launchers treat as "do not retry".
"""

from __future__ import annotations

from collections.abc import Iterable

# Same value as audioflow.launch.base.CONFIG_ERROR_EXIT_CODE; repeated here so that
# importing the config package never pulls in the launch package.
CONFIG_ERROR_EXIT_CODE = 2


class ConfigError(Exception):
    """One or more problems with an XP's configuration.

    Args:
        problems: one message or several; each is one line naming the key, file or value
            at fault and what to do about it.

    Attributes:
        problems: the individual lines.
        exit_code: the process exit status the CLI uses for this error (2).
    """

    exit_code = CONFIG_ERROR_EXIT_CODE

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DriftError(ConfigError):
    """An existing XP folder holds a config that differs from the one composed now.

    Attributes:
        changes: ``{key: (old, new)}`` for every differing key.
    """

    def __init__(self, problems: str | Iterable[str], changes: dict | None = None):
        super().__init__(problems)
        self.changes = dict(changes or {})


class XPLockedError(ConfigError):
    """Another live process already runs this XP stage (its OS lock is held).

    A config-class error: retrying at once cannot help, so the exit status is 2 too.
    """


def report(exc: ConfigError, prog: str) -> int:
    """Print a config error to stderr, one line per problem, and return its exit status.

    Args:
        exc: the error.
        prog: the command name shown before each line (``audioflow sig``).
    """
    import sys

    for line in exc.problems:
        print(f"{prog}: {line}", file=sys.stderr)
    return exc.exit_code
