"""Checkpoint files of an XP folder: atomic writes, checked loads, fallback, keep_last.

``checkpoint.th`` is the latest state (rewritten every epoch and every
``checkpoint.save_every_updates`` updates); ``checkpoint_<E>.th`` is the state at the end
of epoch E's training, which the valid stage of E reads; ``best.th`` holds the best state.

Every save goes through :func:`audioflow.atomic.replacing` (temp file, fsync, rename,
folder fsync): a reader, a crash or a ``kill -9`` sees the previous file or the new one.
``save(..., background=True)`` copies the state in memory and writes it in a background
thread, so the training loop is blocked only for the copy (see benchmarks/checkpoint.py);
saves complete in the order they were made, and a marker must wait for the save of the
state it describes (``handle.wait()`` or :func:`wait_pending`).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from audioflow import atomic
from audioflow.config import layout

FORMAT = "audioflow.checkpoint"
VERSION = 1
LATEST = layout.LATEST_CHECKPOINT
BEST = layout.BEST_CHECKPOINT


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (missing, truncated, foreign or of another XP)."""


def epoch_path(folder: Path, epoch: int) -> Path:
    """``<folder>/checkpoint_<epoch>.th``."""
    return Path(folder) / layout.epoch_checkpoint_name(epoch)


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every ``checkpoint_<E>.th`` in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob("checkpoint_*.th"):
        match = layout.EPOCH_CHECKPOINT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


class PendingSave:
    """A checkpoint save, finished or in flight (what :func:`save` returns).

    Attributes:
        path: the checkpoint file.
    """

    def __init__(self, path: Path, future: Future | None = None):
        self.path = Path(path)
        self._future = future
        self._reported = False  # its error was raised by wait(): wait_pending skips it

    def done(self) -> bool:
        """Whether the file is written (or the save failed)."""
        return self._future is None or self._future.done()

    def wait(self) -> None:
        """Block until the file is on disk under its final name.

        Raises:
            DiskFullError: the disk filled up (the previous file is kept).
            OSError: another write error.
        """
        if self._future is None:
            return
        try:
            self._future.result()
        except BaseException:
            self._reported = True
            raise

    def _settled(self) -> bool:
        """Done, and nothing left for :func:`wait_pending` to report."""
        return self.done() and (self._reported or self._future.exception() is None)


_writer: ThreadPoolExecutor | None = None
_pending: list[PendingSave] = []
_lock = threading.Lock()


def _write(payload: dict, path: Path) -> None:
    # A file object of ours, closed whatever happens: torch's own writer (a path given to
    # torch.save) stays open while its error is kept, holding a full disk's space.
    with atomic.replacing(path) as tmp, open(tmp, "xb") as f:
        torch.save(payload, f)


# Nice value of the background writer thread (Linux nice values are per thread): on a
# busy machine the training loop, not the writer, gets the cores.
WRITER_NICENESS = 10


def _yield_cpu() -> None:
    """Lower the writer thread's CPU priority by ``WRITER_NICENESS``."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: the writer runs at the loop's priority


def _host_copy(obj: Any, memo: dict) -> Any:
    """A copy of ``obj`` that later changes to the original cannot reach: tensors copied to
    CPU memory (views of one storage stay views of one copied storage), containers rebuilt,
    other values deep-copied."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach()
        if obj.layout != torch.strided or obj.is_quantized:  # no plain storage to share
            return obj.to("cpu").clone()
        storage = obj.untyped_storage()
        key = (obj.device, storage.data_ptr(), storage.nbytes())
        copied = memo.get(key)
        if copied is None:
            copied = memo[key] = storage.cpu() if obj.device.type != "cpu" else storage.clone()
        out = torch.empty(0, dtype=obj.dtype)
        return out.set_(copied, obj.storage_offset(), obj.size(), obj.stride())
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps the mapping's type (OrderedDict, defaultdict...)
        for key, value in obj.items():
            out[key] = _host_copy(value, memo)
        return out
    if isinstance(obj, list | tuple) and type(obj) in (list, tuple):
        return type(obj)(_host_copy(v, memo) for v in obj)
    if obj is None or isinstance(obj, int | float | str | bytes | bool):
        return obj
    return copy.deepcopy(obj)


def save(payload: dict, path: Path, *, background: bool = False) -> PendingSave:
    """Save a checkpoint payload atomically (the caller adds kind/sig; format is stamped here).

    Saves complete in the order they are made: a save waits for the background saves
    still in flight before it writes, and background saves are written one at a time.

    Args:
        payload: the state (tensors on any device).
        path: the checkpoint file.
        background: copy ``payload`` to CPU memory now, and write, fsync and rename it in a
            background thread; the caller may change the state as soon as this returns.
            Call ``wait()`` on the result (or :func:`wait_pending`) before writing anything
            that says the state is saved (a stage marker).

    Returns:
        The save: done already unless ``background``.

    Raises:
        DiskFullError: the disk filled up (one line naming the folder; the previous file
            is kept and no temporary file is left). With ``background``, raised by ``wait``.
    """
    global _writer
    payload = {"format": FORMAT, "version": VERSION, **payload}
    path = Path(path)
    if not background:
        wait_pending()
        _write(payload, path)
        return PendingSave(path)
    snapshot = _host_copy(payload, {})
    with _lock:
        if _writer is None:
            _writer = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="checkpoint", initializer=_yield_cpu
            )
        handle = PendingSave(path, _writer.submit(_write, snapshot, path))
        _pending[:] = [h for h in _pending if not h._settled()]
        _pending.append(handle)
    return handle


def wait_pending() -> None:
    """Block until every background save of this process is on disk.

    Raises:
        DiskFullError, OSError: the first error of a failed save that no ``wait()`` has
            raised yet (all saves are waited for).
    """
    with _lock:
        pending = list(_pending)
        _pending.clear()
    errors = []
    for handle in pending:
        reported = handle._reported
        try:
            handle.wait()
        except Exception as exc:  # noqa: BLE001 - re-raised below, after waiting for all
            if not reported:
                errors.append(exc)
    if errors:
        raise errors[0]


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files of saves killed mid-write in an XP folder (and in its
    ``stages/``); see :func:`audioflow.atomic.remove_stale_temps`.

    Returns:
        The deleted paths.
    """
    folder = Path(folder)
    return atomic.remove_stale_temps([folder, folder / layout.STAGES_DIR])


def load(path: Path, sig: str | None = None, kind: str | None = None) -> dict:
    """Load and check an audioflow checkpoint (``weights_only=True``, tensors on the CPU).

    Args:
        path: the file.
        sig: when given, the file must belong to this XP.
        kind: when given, ``"checkpoint"`` or ``"best"``.

    Raises:
        CheckpointError: missing, unreadable (truncated), foreign, or of another XP/kind.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign pickles
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: unreadable checkpoint (truncated or foreign): {first}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an audioflow checkpoint (foreign file)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')} unsupported")
    if sig is not None and payload.get("sig") != sig:
        raise CheckpointError(f"{path}: belongs to XP {payload.get('sig')}, not {sig}")
    if kind is not None and payload.get("kind") != kind:
        raise CheckpointError(f"{path}: is a {payload.get('kind')} file, expected {kind}")
    return payload


def load_latest(folder: Path, sig: str, logger: logging.Logger) -> dict | None:
    """The newest usable checkpoint of an XP, falling back past unusable files.

    ``checkpoint.th`` is tried first, then ``checkpoint_<E>.th`` from the newest epoch.
    Each refused file is logged as an error naming it and why. Temporary files of killed
    saves are removed first (:func:`remove_stale_temps`).

    Returns:
        The payload, or None when the folder holds no checkpoint at all.

    Raises:
        CheckpointError: checkpoint files exist but none is usable (the run must not
            silently start over and overwrite them).
    """
    folder = Path(folder)
    for path in remove_stale_temps(folder):
        logger.info("removed %s, left by a save that was killed", path.name)
    candidates = [folder / LATEST] + [p for _, p in reversed(epoch_checkpoints(folder))]
    candidates = [p for p in candidates if p.exists()]
    errors = []
    for path in candidates:
        try:
            payload = load(path, sig=sig, kind="checkpoint")
        except CheckpointError as exc:
            logger.error("refusing %s; trying the previous checkpoint", exc)
            errors.append(str(exc))
            continue
        if errors:
            logger.warning("resuming from %s", path)
        return payload
    if errors:
        raise CheckpointError(
            "no usable checkpoint in "
            f"{folder} ({'; '.join(errors)}); delete these files to start the XP over"
        )
    return None


def keep_last(folder: Path, keep: int, logger: logging.Logger) -> list[Path]:
    """Delete all but the newest ``keep`` epoch checkpoints (0 keeps all).

    A checkpoint whose epoch has no ``stages/valid_<E>.json`` yet is never deleted: the
    valid stage of that epoch still needs it.

    Returns:
        The deleted paths.
    """
    if keep <= 0:
        return []
    deleted = []
    for epoch, path in epoch_checkpoints(folder)[:-keep]:
        if not layout.marker_path(folder, "valid", epoch).exists():
            continue
        path.unlink(missing_ok=True)
        logger.info("keep_last=%d: deleted %s", keep, path.name)
        deleted.append(path)
    return deleted


def load_best(xp) -> dict:
    """The best state of ``xp`` (an XP handle with ``folder`` and ``sig``).

    Raises:
        CheckpointError: the XP has no best state yet (no valid stage has run).
    """
    from audioflow.config.layout import BEST_CHECKPOINT

    best_path = Path(xp.folder) / BEST_CHECKPOINT
    if not best_path.exists():
        raise CheckpointError(
            f"{best_path}: no best state yet; run the XP through a valid stage first"
        )
    return load(best_path, sig=xp.sig, kind="best")
