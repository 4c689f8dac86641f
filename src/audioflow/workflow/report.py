"""Metrics and training history of a published XP, in the files DVC shows.

``python -m audioflow.workflow.report XP_FOLDER METRICS_JSON HISTORY_CSV`` (the workflow's
``report`` rule runs it) writes the last evaluate metrics as JSON (``dvc metrics show``)
and one CSV row per epoch with every stage's scalars as ``<stage>_<metric>`` columns
(``dvc plots show`` draws loss and metric curves from it).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from audioflow import atomic
from audioflow.config.layout import HISTORY_FILE


def final_metrics(history: list[dict]) -> dict:
    """The metrics of the last evaluate, with the epoch it ran at.

    Raises:
        ValueError: the history has no evaluate stage yet.
    """
    for entry in reversed(history):
        if "evaluate" in entry:
            return {"epoch": entry["epoch"], **entry["evaluate"]}
    raise ValueError("history.json has no evaluate stage yet: run the XP to its last epoch")


def history_rows(history: list[dict]) -> tuple[list[str], list[dict]]:
    """CSV columns (``epoch`` first, then sorted ``<stage>_<metric>``) and one row per epoch."""
    rows = []
    for entry in history:
        row = {"epoch": entry["epoch"]}
        for stage, metrics in entry.items():
            if isinstance(metrics, dict):
                for key, value in metrics.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        row[f"{stage}_{key}"] = value
        rows.append(row)
    columns = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
    return columns, rows


def write_report(xp_folder: Path, metrics_path: Path, history_path: Path) -> None:
    """Write the metrics JSON and history CSV of the XP in ``xp_folder``.

    Raises:
        FileNotFoundError: the XP folder has no history.json.
        ValueError: the history has no evaluate stage.
    """
    history_file = Path(xp_folder) / HISTORY_FILE
    if not history_file.exists():
        raise FileNotFoundError(f"{history_file} does not exist: run the XP first")
    history = json.loads(history_file.read_text())
    metrics = final_metrics(history)
    columns, rows = history_rows(history)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(metrics_path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    atomic.write_text(history_path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("xp_folder", type=Path)
    parser.add_argument("metrics", type=Path)
    parser.add_argument("history", type=Path)
    args = parser.parse_args(argv)
    try:
        write_report(args.xp_folder, args.metrics, args.history)
    except (OSError, ValueError) as exc:
        print(f"audioflow report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
