"""What an XP folder says about its run: status, epoch, last and best metrics.

Read by the light commands (``info``, ``ls``); only JSON and YAML files are opened, so
listing hundreds of XPs stays fast and never imports torch.
"""

from __future__ import annotations

import json
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
        status: ``running`` (a lock is held), ``done`` (history has ``optim.epochs``
            entries), ``partial`` (some epochs or a checkpoint) or ``new``.
        epoch: the last epoch in history.json (0 when none).
        epochs: ``optim.epochs`` of the stored config (None when unknown).
        last: the last history entry (``{"epoch": E, "train": {...}, ...}``) or {}.
        best: the content of best.json or {}.
        running: names of the locks held (``train``, ``valid``, ...).
    """

    status: str
    epoch: int = 0
    epochs: int | None = None
    last: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    running: list[str] = field(default_factory=list)


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
    if running:
        status = "running"
    elif epochs is not None and len(history) >= epochs:
        status = "done"
    elif history or (folder / LATEST_CHECKPOINT).exists():
        status = "partial"
    else:
        status = "new"
    return XPStatus(status, epoch, epochs, last, best, running)


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
