"""What an XP folder says about its run: status, epoch, last and best metrics.

Read by the light commands (``info``, ``ls``); only JSON and YAML files are opened, so
listing hundreds of XPs stays fast and never imports torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .layout import BEST_FILE, CONFIG_FILE, HISTORY_FILE, LATEST_CHECKPOINT
from .lock import held_locks


@dataclass
class XPStatus:
    """The state of one XP folder.

    Attributes:
        status: ``running`` (a lock is held), ``failed`` (a result is not finite: NaN or
            infinite), ``done`` (history has ``optim.epochs`` entries), ``partial`` (some
            epochs or a checkpoint) or ``new``.
        epoch: the last epoch in history.json (0 when none).
        epochs: ``optim.epochs`` of the stored config (None when unknown).
        last: the last history entry (``{"epoch": E, "train": {...}, ...}``) or {}.
        best: the content of best.json or {}.
        running: names of the locks held (``train``, ``valid``, ...).
        nonfinite: the first non-finite result, e.g. ``valid.loss=nan at epoch 2``.
    """

    status: str
    epoch: int = 0
    epochs: int | None = None
    last: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    running: list[str] = field(default_factory=list)
    nonfinite: str | None = None


def _json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        # Missing or being replaced: the status is best effort, never an error.
        return default


def _epochs(folder: Path) -> int | None:
    try:
        cfg = yaml.safe_load((folder / CONFIG_FILE).read_text()) or {}
        return int(cfg["optim"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None


# How JSON writers spell what is not a finite number (json.dumps, strict writers, YAML).
_NONFINITE_TEXT = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity", ".nan", ".inf", "-.inf"}


def is_nonfinite(value: Any) -> bool:
    """Whether a stored metric is NaN or infinite (a float, or such a float as text)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, str) and value.strip().lower() in _NONFINITE_TEXT


def first_nonfinite(history: list) -> str | None:
    """``stage.metric=value at epoch E`` for the first non-finite metric in a history."""
    for entry in history:
        if not isinstance(entry, dict):
            continue
        for stage, metrics in entry.items():
            if not isinstance(metrics, dict):
                continue
            for key, value in metrics.items():
                if is_nonfinite(value):
                    return f"{stage}.{key}={value} at epoch {entry.get('epoch', '?')}"
    return None


def read_status(folder: Path) -> XPStatus:
    """The status of the XP in ``folder``."""
    folder = Path(folder)
    history = _json(folder / HISTORY_FILE, [])
    history = history if isinstance(history, list) else []
    best = _json(folder / BEST_FILE, {})
    best = best if isinstance(best, dict) else {}
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    epoch = int(last.get("epoch", len(history))) if last else 0
    epochs = _epochs(folder)
    running = held_locks(folder)
    # A run on NaN weights may go through every epoch: it is never "done".
    nonfinite = first_nonfinite(history)
    if nonfinite is None and is_nonfinite(best.get("value")):
        nonfinite = f"best {best.get('metric', 'value')}={best['value']}"
    if running:
        status = "running"
    elif nonfinite:
        status = "failed"
    elif epochs is not None and len(history) >= epochs:
        status = "done"
    elif history or (folder / LATEST_CHECKPOINT).exists():
        status = "partial"
    else:
        status = "new"
    return XPStatus(status, epoch, epochs, last, best, running, nonfinite)


def format_best(best: dict) -> str:
    """A short text for best.json: ``metric=value`` when it names its metric, else its
    numbers (``epoch=3 loss=0.12``); ``-`` when empty."""
    if not best:
        return "-"
    if "metric" in best and "value" in best:
        text = f"{best['metric']}={_num(best['value'])}"
        return text + (f" @{best['epoch']}" if "epoch" in best else "")
    items = [f"{k}={_num(v)}" for k, v in best.items() if isinstance(v, int | float)]
    return " ".join(items) or "-"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
