"""Replace files and folders so that readers see the old version or the new one, never half.

The temporary name sits beside the destination (same file system: the rename is atomic)
and is created by a plain ``open``/``mkdir``, so it gets the mode the umask gives, not
``mkstemp``'s owner-only 0600: manifests, datasets, XP folders and reference packages
are shared between users and pods. A file that replaces another keeps the old one's mode.

Durability: the temporary file is fsynced before the rename and its folder after it, so
that after a crash (power loss, a killed node) the new name points to the whole new
content. A process killed mid-write leaves only its temporary file, which names the host
and process that wrote it: :func:`remove_stale_temps` deletes those of dead writers.
A full disk is a :class:`DiskFullError` naming the file, never half a file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The errors of a write that more space (or quota) would have let through.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# A temporary file of another host is removed once this old (its writer cannot be asked).
STALE_SECONDS = 6 * 3600


class DiskFullError(OSError):
    """A write failed for lack of space: one line naming the file, for the user to act on.

    Attributes:
        path: the file that was being written.
        exit_code: the CLI's exit status for it (2: retrying the same job cannot help).
    """

    exit_code = 2

    def __init__(self, path: str | os.PathLike, cause: OSError):
        self.path = Path(path)
        super().__init__(
            cause.errno,
            f"no space left on {self.path.parent} (writing {self.path.name}): free space "
            "there or move the XP root (AUDIOFLOW_XP_DIR); any previous version is kept",
        )

    def __str__(self) -> str:
        return self.strerror


def _host() -> str:
    """This machine's name as it goes into temporary names (no dots: they split fields)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


# .<name>.<host>-<pid>.<8 hex>.tmp (also the older .<name>.<pid>.<8 hex>.tmp).
_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.(?:(?P<host>[A-Za-z0-9_-]+)-)?(?P<pid>\d+)\.[0-9a-f]+\.tmp$"
)


def blocking_file(path: str | os.PathLike) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (so that ``path`` can
    never be created), else None; missing folders are created by the writers here."""
    for parent in Path(path).parents:
        if parent.is_dir():
            return None
        if parent.exists():
            return parent
    return None


def temp_beside(path: str | os.PathLike) -> Path:
    """A fresh, unused name in ``path``'s folder, hidden and marked as temporary."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_host()}-{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale_temps(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folders``.

    A temporary file of this host is stale when the process named in it is gone; one of
    another host (a pod of a shared volume) when it is older than ``STALE_SECONDS``. A
    live writer's file is never touched. Sub-folders are not searched.

    Args:
        folders: folders to clean (missing ones are skipped).

    Returns:
        The deleted paths.
    """
    host, now, removed = _host(), time.time(), []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _TEMP_RE.match(entry.name)
            if not match or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if match["host"] in (None, host):
                    stale = not _alive(int(match["pid"]))
                else:
                    stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
                if stale:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except FileNotFoundError:
                pass  # its writer renamed or removed it meanwhile
    return removed


@contextmanager
def replacing(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to create and write; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the destination (its folder is created when missing).
        fsync: flush the file before the rename and the folder after it (durable on a
            crash); without it the replacement is atomic for readers only.

    Raises:
        DiskFullError: no space (or quota) left for the new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass  # a new file: the umask's mode, as created
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    except OSError as exc:
        if exc.errno in _NO_SPACE and not isinstance(exc, DiskFullError):
            raise DiskFullError(path, exc) from None
        raise
    except RuntimeError as exc:
        # torch.save reports a failed write as a RuntimeError ("unexpected pos ..."), the
        # OSError as its context; without one, an exhausted file system tells.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno in _NO_SPACE:
            raise DiskFullError(path, cause) from None
        if _no_space_left(path.parent):
            raise DiskFullError(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _no_space_left(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail == 0 or st.f_favail == 0


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with replacing(path, fsync) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"), fsync)


def write_json(data: Any, path: str | os.PathLike, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` as indented JSON with sorted keys, atomically
    (stage markers, history.json, best.json)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_text(path, text, fsync)


def temp_folder_beside(path: str | os.PathLike) -> Path:
    """Create and return an empty temporary folder beside ``path`` (umask's mode), to be
    filled and renamed to ``path`` by the caller."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    os.mkdir(tmp)
    return tmp
