"""The error raised for a bad OptimScheduler or optimizer configuration."""

from __future__ import annotations

from audioflow.config.errors import ConfigError


class OptimConfigError(ConfigError, ValueError):
    """An ``optim_sches`` / ``optim`` setting that cannot work, found at build (or first step).

    A ConfigError, so the CLI prints its one line and exits with status 2, and a ValueError,
    so plain-Python callers can catch it as a bad argument.
    """
