"""An experiment (XP): its overrides, resolved config, signature and folder.

The process that runs an XP registers it with :func:`set_current_xp`, so that code deep
inside a run (the solver, its checkpoints, metrics) finds the XP folder without passing
it through every constructor, as Dora does for AudioCraft solvers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class XP:
    """One experiment.

    Args:
        sig: 8 hex characters identifying the XP.
        overrides: the override strings the XP was defined by, as given.
        cfg: the fully composed config (an omegaconf DictConfig).
        folder: ``<xp_root>/xps/<sig>``.
        delta: the (key, value) pairs that make up the signature.
        created: the call that returned this XP created its folder.
    """

    sig: str
    overrides: list[str]
    cfg: Any
    folder: Path
    delta: list[tuple[str, Any]] = field(default_factory=list)
    created: bool = False


_current: XP | None = None


def set_current_xp(xp: XP | None) -> None:
    """Register the XP this process runs (None to clear)."""
    global _current
    _current = xp


def current_xp() -> XP:
    """The XP this process runs.

    Raises:
        RuntimeError: no XP was registered (run through `audioflow run` or set one).
    """
    if _current is None:
        raise RuntimeError("no current XP: run through `audioflow run` or call set_current_xp(xp)")
    return _current


@contextmanager
def using_xp(xp: XP) -> Iterator[XP]:
    """Make ``xp`` the current XP for the duration of a ``with`` block."""
    previous = _current
    set_current_xp(xp)
    try:
        yield xp
    finally:
        set_current_xp(previous)
