"""Replace files and folders so that readers see the old version or the new one, never half.

The temporary name sits beside the destination (same file system: the rename is atomic)
and is created by a plain ``open``/``mkdir``, so it gets the mode the umask gives, not
``mkstemp``'s owner-only 0600: manifests, datasets, XP folders and reference packages
are shared between users and pods. A file that replaces another keeps the old one's mode.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def replacing(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to create and write; on success it replaces ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
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
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with replacing(path, fsync) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"), fsync)


def temp_folder_beside(path: str | os.PathLike) -> Path:
    """Create and return an empty temporary folder beside ``path`` (umask's mode), to be
    filled and renamed to ``path`` by the caller."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    os.mkdir(tmp)
    return tmp
