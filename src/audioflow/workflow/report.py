"""Metrics and training history of a published XP, in the files DVC shows.

``python -m audioflow.workflow.report XP_FOLDER METRICS_JSON HISTORY_CSV UPDATES_CSV`` (the
workflow's ``report`` rule runs it) writes the last evaluate metrics as JSON (``dvc metrics
show``), one CSV row per epoch with every stage's scalars as ``<stage>_<metric>`` columns
and the update that ended the epoch, and one CSV row per logged train update
(``updates.jsonl``) with ``train_<metric>`` columns: ``dvc plots show`` draws each quantity
against updates from both (see dvc.yaml's ``plots``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from audioflow import atomic
from audioflow.config import layout


def final_metrics(history: list[dict]) -> dict:
    """The metrics of the last evaluate, with the epoch it ran at.

    Raises:
        ValueError: the history has no evaluate stage yet.
    """
    for entry in reversed(history):
        if "evaluate" in entry:
            return {"epoch": entry["epoch"], **entry["evaluate"]}
    raise ValueError("history.json has no evaluate stage yet: run the XP to its last epoch")


def history_rows(
    history: list[dict], updates_per_epoch: int | None = None
) -> tuple[list[str], list[dict]]:
    """CSV columns (``epoch``, ``update``, then sorted ``<stage>_<metric>``), a row per epoch.

    ``update`` is the global update that ended the epoch (the epoch when unknown), the x
    of the per-update history, so that both overlay.
    """
    rows = []
    for entry in history:
        row = {"epoch": entry["epoch"], "update": entry["epoch"] * (updates_per_epoch or 1)}
        for stage, metrics in entry.items():
            if isinstance(metrics, dict):
                for key, value in metrics.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        row[f"{stage}_{key}"] = value
        rows.append(row)
    columns = ["epoch", "update"]
    columns += sorted({key for row in rows for key in row} - set(columns))
    return columns, rows


def update_rows(updates: list[dict]) -> tuple[list[str], list[dict]]:
    """CSV columns (``update``, then sorted ``train_<metric>``) and one row per logged update.

    Args:
        updates: the per-update rows of :func:`~audioflow.workflow.report_page.load_xp`
            (one per update, in order).
    """
    rows = []
    for row in updates:
        numbers = {k: v for k, v in row.items() if isinstance(v, int | float)}
        values = {f"train_{k}": v for k, v in numbers.items() if k not in ("update", "time")}
        rows.append({"update": int(row["update"]), **values})
    return ["update"] + sorted({key for row in rows for key in row} - {"update"}), rows


def _csv(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_report(
    xp_folder: Path, metrics_path: Path, history_path: Path, updates_path: Path | None = None
) -> None:
    """Write the metrics JSON, history CSV and (when asked) per-update CSV of an XP.

    Raises:
        FileNotFoundError: the XP folder has no history.json.
        ValueError: the history has no evaluate stage, or a file is not valid JSON.
    """
    from audioflow.workflow.report_page import load_xp

    history_file = Path(xp_folder) / layout.HISTORY_FILE
    if not history_file.exists():
        raise FileNotFoundError(f"{history_file} does not exist: run the XP first")
    record = load_xp(Path(xp_folder))
    metrics = final_metrics(record.history)
    history = _csv(*history_rows(record.history, record.updates_per_epoch))
    updates = _csv(*update_rows(record.updates)) if updates_path is not None else None
    atomic.write_text(metrics_path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    atomic.write_text(history_path, history)
    if updates is not None:
        atomic.write_text(updates_path, updates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xp_folder", type=Path)
    parser.add_argument("metrics", type=Path)
    parser.add_argument("history", type=Path)
    parser.add_argument("updates", type=Path, nargs="?", default=None)
    args = parser.parse_args(argv)
    from audioflow.config.errors import ConfigError

    try:
        write_report(args.xp_folder, args.metrics, args.history, args.updates)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"audioflow report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
