"""Checkpoint files of an XP folder: atomic writes, checked loads, fallback, keep_last.

``checkpoint.th`` is the latest state (rewritten every epoch and every
``checkpoint.save_every_updates`` updates); ``checkpoint_<E>.th`` is the state at the end
of epoch E's training, which the valid stage of E reads; ``best.th`` holds the best state.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch

from audioflow import atomic

FORMAT = "audioflow.checkpoint"
VERSION = 1
LATEST = "checkpoint.th"
BEST = "best.th"
_EPOCH_RE = re.compile(r"^checkpoint_(\d+)\.th$")


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (missing, truncated, foreign or of another XP)."""


def epoch_path(folder: Path, epoch: int) -> Path:
    """``<folder>/checkpoint_<epoch>.th``."""
    return Path(folder) / f"checkpoint_{epoch}.th"


def epoch_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every ``checkpoint_<E>.th`` in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob("checkpoint_*.th"):
        match = _EPOCH_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, write) -> None:
    """Write through a temp file, fsync and rename: a reader or a crash never sees half a file."""
    with atomic.replacing(path) as tmp, open(tmp, "xb") as f:
        write(f)
    _fsync_dir(Path(path).parent)


def save(payload: dict, path: Path) -> None:
    """Save a checkpoint payload atomically (the caller adds kind/sig; format is stamped here)."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    _write_atomic(path, lambda f: torch.save(payload, f))


def write_json(data, path: Path) -> None:
    """Write JSON atomically (stage markers, history, best.json)."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    _write_atomic(path, lambda f: f.write(text.encode()))


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
    Each refused file is logged as an error naming it and why.

    Returns:
        The payload, or None when the folder holds no checkpoint at all.

    Raises:
        CheckpointError: checkpoint files exist but none is usable (the run must not
            silently start over and overwrite them).
    """
    folder = Path(folder)
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
        if not (Path(folder) / "stages" / f"valid_{epoch}.json").exists():
            continue
        path.unlink(missing_ok=True)
        logger.info("keep_last=%d: deleted %s", keep, path.name)
        deleted.append(path)
    return deleted
