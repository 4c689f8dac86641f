"""Stage markers and history: what each stage of each epoch produced, on disk.

``stages/<stage>_<E>.json`` holds a stage's metrics and is written last, atomically: its
presence means the stage finished (the workflow uses it as the rule's output).
``history.json`` is rebuilt from the markers, so stages run by separate processes (train
epoch E+1 beside valid epoch E) all end up in it.

A solver keeps its own history, checkpointed: a list of entries ``{"epoch": E, stage:
metrics, ...}`` in epoch order (:func:`entry`, :func:`add_markers`, :func:`train_marker`).
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

from audioflow.atomic import write_json
from audioflow.config.layout import HISTORY_FILE, MARKER_RE, STAGES, STAGES_DIR, marker_path


def read_marker(folder: Path, stage: str, epoch: int) -> dict | None:
    """The metrics of a finished stage, or None when it has not finished."""
    path = marker_path(folder, stage, epoch)
    if not path.exists():
        return None
    return json.loads(path.read_text())


def rebuild_history(folder: Path, extra: dict[tuple[str, int], dict] | None = None) -> list:
    """History entries ``{"epoch": E, stage: metrics, ...}`` from every marker, by epoch.

    Args:
        folder: the XP folder.
        extra: ``(stage, epoch) -> metrics`` not yet on disk (the stage finishing now).
    """
    found: dict[int, dict] = {}
    stages_dir = Path(folder) / STAGES_DIR
    for path in sorted(stages_dir.glob("*.json")) if stages_dir.is_dir() else []:
        match = MARKER_RE.match(path.name)
        if match:
            stage, epoch = match.group(1), int(match.group(2))
            try:
                found.setdefault(epoch, {})[stage] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a marker being replaced right now; the next rebuild sees it
    for (stage, epoch), metrics in (extra or {}).items():
        found.setdefault(epoch, {})[stage] = metrics
    history = []
    for epoch in sorted(found):
        entry = {"epoch": epoch}
        entry.update({s: found[epoch][s] for s in STAGES if s in found[epoch]})
        history.append(entry)
    return history


def finish_stage(folder: Path, stage: str, epoch: int, metrics: dict) -> None:
    """Record a finished stage: history.json first, then the marker (the completion signal).

    Stages of one XP finish concurrently (evaluate and generate of an epoch, train E+1 and
    valid E): the rebuild and both writes hold one lock, so no stage's rebuild misses a
    marker that another wrote in between.
    """
    lock = Path(folder) / ".history.lock"
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # held for milliseconds; waiting is right here
        try:
            history = rebuild_history(folder, {(stage, epoch): metrics})
            write_json(history, Path(folder) / HISTORY_FILE)
            write_json(metrics, marker_path(folder, stage, epoch))
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def entry(history: list[dict], epoch: int) -> dict:
    """The entry of ``epoch`` in a solver's history (created, in epoch order, when missing)."""
    found = next((h for h in history if h["epoch"] == epoch), None)
    if found is None:
        found = {"epoch": epoch}
        history.append(found)
        history.sort(key=lambda h: h["epoch"])
    return found


def add_markers(history: list[dict], folder: Path, epoch: int) -> None:
    """Add to ``epoch``'s entry the stages after train whose markers are in ``folder``
    (stages that finished after the checkpoint holding ``history`` was written)."""
    found = entry(history, epoch)
    for stage in STAGES[1:]:
        done = found.get(stage) or read_marker(folder, stage, epoch)
        if done is not None:
            found[stage] = done


def train_marker(folder: Path, history: list[dict], epoch: int, write: bool) -> dict:
    """The train marker of a trained epoch, written from ``history`` when missing.

    The checkpoint that says an epoch is done is written before its marker (the marker
    tells the workflow checkpoint_<E>.th exists); a kill in between leaves the marker
    to write on resume, from the metrics the checkpoint's history kept.

    Args:
        write: whether this process writes the missing marker (rank 0).
    """
    marker = read_marker(folder, "train", epoch)
    if marker is None:
        marker = next((h for h in history if h["epoch"] == epoch), {}).get("train", {})
        if write:
            finish_stage(folder, "train", epoch, marker)
    return marker
