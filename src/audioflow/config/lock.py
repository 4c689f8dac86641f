"""OS-level XP locks: one live process per XP stage, and no stale lock files ever.

``fcntl.flock`` locks belong to the open file, so the kernel drops them when the holding
process dies however it dies (SIGKILL, OOM, node reboot of a local disk): a leftover
``.lock`` file never blocks a new run and never needs deleting by hand.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import XPLockedError
from .layout import LOCKS_DIR, lock_path


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def xp_lock(folder: Path, name: str = "train") -> Iterator[Path]:
    """Hold the ``name`` lock of an XP for the duration of a ``with`` block.

    Take it in one process per XP run (the launcher or rank 0), not in every rank.
    A whole-loop run and train stages use ``train``; valid/evaluate/generate stages use
    their stage name so that they can run beside training.

    Args:
        folder: the XP folder.
        name: the lock name.

    Yields:
        The lock file path (it holds the pid of the holder).

    Raises:
        XPLockedError: another live process holds the lock (refused within ~0.2 s).
    """
    path = lock_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _lock_soon(fd):
            raise XPLockedError(
                f"XP {Path(folder).name} is already running its {name} stage (pid "
                f"{_holder(path)} holds {path}); wait for it to finish or stop that process"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_soon(fd: int, attempts: int = 10, pause: float = 0.02) -> bool:
    """Take the exclusive lock, allowing ~0.2 s for a status probe (`held_locks`, which
    takes it shared for an instant) to let go; a running stage holds it far longer."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < attempts:
                time.sleep(pause)
    return False


def held_locks(folder: Path) -> list[str]:
    """Names of the locks of an XP folder that a live process holds right now."""
    held = []
    for path in sorted((Path(folder) / LOCKS_DIR).glob("*.lock")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(path.stem)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return held
