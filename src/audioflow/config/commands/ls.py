"""List XPs as a table to compare them: signature, name, status, epoch, key metrics, overrides.

Examples:
  audioflow ls                                   every XP of the XP root, oldest first
  audioflow ls --grid config/grids/lr_sweep.yaml one grid's XPs, "not started" included
  audioflow ls --metrics valid.loss,evaluate.sisnr --sort=-evaluate.sisnr
  audioflow ls --where optim.lr=1e-3 --where status=done
  audioflow ls --json                            the same rows for a script

Metric columns default to each task's key metric (the one that picks the best state) on
valid and evaluate, from the last epoch that ran them; ``--metrics`` picks others
(``STAGE.NAME``). ``--where KEY=VALUE`` keeps XPs whose config (or ``status``, ``name``)
has that value; ``--sort KEY`` sorts by a column or config key (``--sort=-KEY``: descending).
XP names come from the workflow config (``--workflow``, default config/workflow.yaml).

Status: running (a process holds one of its locks), failed (a result is NaN or infinite),
done (all optim.epochs epochs in its history), partial (some epochs or a checkpoint), new,
or, with --grid, not started (no folder yet).
The XP root comes from the team/cluster (AUDIOFLOW_TEAM, AUDIOFLOW_CLUSTER,
AUDIOFLOW_XP_DIR); see docs/config.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import layout

DEFAULT_WORKFLOW = Path("config/workflow.yaml")
NOT_STARTED = "not started"
MIN_OVERRIDES_WIDTH = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--metrics", help="metric columns, comma-separated STAGE.NAME (e.g. valid.loss)"
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep XPs whose config key (or status, name) has this value; repeatable",
    )
    parser.add_argument(
        "--sort", metavar="KEY", help="sort by a column or config key; --sort=-KEY: descending"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--grid", type=Path, help="only the XPs of this grid file")
    parser.add_argument(
        "--workflow",
        type=Path,
        default=None,
        help=f"workflow config naming XPs (default {DEFAULT_WORKFLOW} when present)",
    )
    parser.add_argument(
        "--config-dir", type=Path, default=None, help="config folder searched before config/"
    )


@dataclass
class Row:
    """One XP of the table."""

    sig: str
    status: str
    name: str = ""
    epoch: int = 0
    epochs: int | None = None
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    folder: str = ""

    def value(self, key: str) -> Any:
        """A column (sig, name, status, epoch), a metric (STAGE.NAME) or a config key."""
        if key in ("sig", "name", "status", "epoch"):
            return getattr(self, key)
        if key in self.metrics:
            return self.metrics[key]
        return _dotted(self.config, key)


_MISSING = object()


def _dotted(data: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def last_metrics(history: list) -> dict[str, Any]:
    """``{"stage.metric": value}`` of the last epoch that ran each stage."""
    found: dict[str, Any] = {}
    for entry in history:
        if not isinstance(entry, dict):
            continue
        for stage in layout.STAGES:
            section = entry.get(stage)
            if isinstance(section, dict):
                found.update({f"{stage}.{k}": v for k, v in section.items()})
    return found


def default_columns(rows: list[Row], limit: int = 2) -> list[str]:
    """Each task's key metric on valid and evaluate: the one best.json names."""
    names: list[str] = []
    for row in rows:
        metric = row.best.get("metric")
        if isinstance(metric, str) and metric not in names:
            names.append(metric)
    names = names[:limit]
    columns = [f"valid.{n}" for n in names]
    columns += [f"evaluate.{n}" for n in names if any(f"evaluate.{n}" in r.metrics for r in rows)]
    return columns


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _read_config(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def read_row(folder: Path, name: str = "") -> Row:
    """The row of an existing XP folder."""
    from ..layout import CONFIG_FILE, HISTORY_FILE, OVERRIDES_FILE
    from ..status import read_status

    state = read_status(folder)
    overrides = _read_json(folder / OVERRIDES_FILE, ["?"])
    history = _read_json(folder / HISTORY_FILE, [])
    return Row(
        sig=folder.name,
        status=state.status,
        name=name,
        epoch=state.epoch,
        epochs=state.epochs,
        overrides=[str(o) for o in overrides] if isinstance(overrides, list) else ["?"],
        metrics=last_metrics(history if isinstance(history, list) else []),
        best=state.best,
        config=_read_config(folder / CONFIG_FILE),
        folder=str(folder),
    )


def _matches(actual: Any, wanted: str) -> bool:
    """Whether a stored value equals the text of ``--where`` (``1e-3`` equals 0.001)."""
    import yaml

    if actual is _MISSING:
        return False
    if actual is None:
        return wanted.lower() in ("null", "none", "~")
    if isinstance(actual, bool):
        return str(actual).lower() == wanted.lower()
    if isinstance(actual, int | float):
        try:
            return math.isclose(float(actual), float(wanted), rel_tol=1e-9)
        except ValueError:
            return False
    if isinstance(actual, list | dict):
        try:
            return yaml.safe_load(wanted) == actual
        except yaml.YAMLError:
            return False
    return str(actual) == wanted


def _filters(where: list[str]) -> list[tuple[str, str]]:
    from ..errors import ConfigError

    pairs = []
    for item in where:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {item}: write KEY=VALUE, e.g. --where optim.lr=1e-3")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _sort_key(row: Row, key: str) -> tuple:
    value = row.value(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return (0, value, "")
    if value is _MISSING or value is None or isinstance(value, float):
        return (2, 0, "")  # missing and non-finite values last, whatever the direction
    return (1, 0, str(value))


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    """Rows by ``key`` ascending (``-key``: descending); rows without a value go last."""
    descending = key.startswith("-")
    key = key.lstrip("-")
    present = [r for r in rows if _sort_key(r, key)[0] < 2]
    absent = [r for r in rows if _sort_key(r, key)[0] == 2]
    return sorted(present, key=lambda r: _sort_key(r, key), reverse=descending) + absent


def _workflow_names(path: Path | None, config_dir: Path | None) -> dict[str, str]:
    """``{sig: name}`` of the XPs a workflow config declares (empty without one)."""
    from ..errors import ConfigError
    from ..signing import signatures

    path = path if path is not None else (DEFAULT_WORKFLOW if DEFAULT_WORKFLOW.is_file() else None)
    if path is None:
        return {}
    from ..grids import GridError, load_workflow_config, xp_specs

    try:
        config = load_workflow_config([path])
        specs = xp_specs(config.get("xps") or [], config.get("grids") or [], Path.cwd())
        chosen = config_dir or config.get("config_dir")
        sigs = signatures([s.overrides for s in specs], chosen)
    except (OSError, ValueError, GridError, ConfigError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"audioflow ls: no XP names from {path}: {first}", file=sys.stderr)
        return {}
    return dict(zip(sigs, (s.name for s in specs)))


def _grid_rows(path: Path, config_dir: Path | None, xps: Path) -> list[Row]:
    """One row per XP of a grid file, in file order, ``not started`` when it has no folder."""
    from ..grids import load_grid
    from ..layout import CONFIG_FILE
    from ..signing import signatures

    specs = load_grid(path)
    sigs = signatures([s.overrides for s in specs], config_dir)
    rows = []
    for spec, sig in zip(specs, sigs):
        folder = xps / sig
        if (folder / CONFIG_FILE).is_file():
            rows.append(read_row(folder, spec.name))
        else:
            rows.append(
                Row(sig=sig, status=NOT_STARTED, name=spec.name, overrides=list(spec.overrides))
            )
    return rows


def _fmt(value: Any) -> str:
    if value is _MISSING or value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[Row], columns: list[str], width: int) -> list[str]:
    """The table's lines, the overrides column cut to fit ``width`` characters."""
    named = any(r.name for r in rows)
    headers = ["SIG", *(["NAME"] if named else []), "STATUS", "EPOCH", *columns]
    cells = []
    for row in rows:
        epoch = f"{row.epoch}/{row.epochs}" if row.epochs is not None else str(row.epoch)
        epoch = "-" if row.status == NOT_STARTED else epoch
        values = [row.sig, *([row.name or "-"] if named else []), row.status, epoch]
        cells.append(values + [_fmt(row.metrics.get(c, _MISSING)) for c in columns])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    right = {i for i, h in enumerate(headers) if h == "EPOCH" or i >= len(headers) - len(columns)}
    used = sum(widths) + 2 * len(widths)
    room = max(MIN_OVERRIDES_WIDTH, width - used)

    def line(values: list[str], overrides: str) -> str:
        parts = [
            v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))
        ]
        if len(overrides) > room:
            overrides = overrides[: room - 1] + "…"
        return ("  ".join(parts) + "  " + overrides).rstrip()

    # Overrides every row shares (a grid's base) would fill the column with the same text:
    # they are said once, under the table, and the column shows what tells XPs apart.
    shared = [o for o in rows[0].overrides if all(o in r.overrides for r in rows)]
    shared = shared if len(rows) > 1 else []
    lines = [line(headers, "OVERRIDES")]
    for values, row in zip(cells, rows):
        own = [o for o in row.overrides if o not in shared]
        lines.append(line(values, " ".join(own) or "(only the shared ones)"))
    if shared:
        lines.append(f"every XP above also has: {' '.join(shared)}")
    return lines


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite numbers become null (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def as_json(rows: list[Row], columns: list[str]) -> str:
    """The rows as a JSON list (every metric of the last epochs, not only the columns)."""
    data = [
        {
            "sig": r.sig,
            "name": r.name or None,
            "status": r.status,
            "epoch": r.epoch,
            "epochs": r.epochs,
            "columns": {c: r.metrics.get(c) for c in columns},
            "metrics": r.metrics,
            "best": r.best,
            "overrides": r.overrides,
            "folder": r.folder or None,
        }
        for r in rows
    ]
    return json.dumps(_plain(data), indent=2, allow_nan=False)


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, report
    from ..layout import CONFIG_FILE, xps_dir
    from ..teams import use_config_dir, xp_root

    try:
        use_config_dir(args.config_dir)
        filters = _filters(args.where)
        root = xps_dir(xp_root())
        if args.grid is not None:
            from ..grids import GridError

            try:
                rows = _grid_rows(args.grid, args.config_dir, root)
            except GridError as exc:
                raise ConfigError(str(exc)) from None
        else:
            names = _workflow_names(args.workflow, args.config_dir)
            folders = [p for p in root.glob("*") if (p / CONFIG_FILE).is_file()]
            folders.sort(key=lambda p: ((p / CONFIG_FILE).stat().st_mtime, p.name))
            rows = [read_row(f, names.get(f.name, "")) for f in folders]
    except ConfigError as exc:
        return report(exc, "audioflow ls")
    if not rows:
        print(f"no XPs under {root}", file=sys.stderr)
        return 0
    rows = [r for r in rows if all(_matches(r.value(k), v) for k, v in filters)]
    if args.sort:
        rows = sort_rows(rows, args.sort)
    columns = (
        [c.strip() for c in args.metrics.split(",") if c.strip()]
        if args.metrics
        else default_columns(rows)
    )
    if args.json:
        print(as_json(rows, columns))
        return 0
    if not rows:
        print(f"no XP matches {' '.join(args.where)}", file=sys.stderr)
        return 0
    width = shutil.get_terminal_size((100, 24)).columns
    print("\n".join(format_table(rows, columns, width)))
    return 0
