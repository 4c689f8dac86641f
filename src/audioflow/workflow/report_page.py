"""The XP report: one static HTML page per XP (or several XPs overlaid), viewable offline.

The page shows what defines the XP (overrides, delta), its best state, how long each stage
took, a chart per quantity (every train, valid and evaluate metric, learning rate and
throughput) against the global update, and links to the listening page of each generate
epoch. Everything it shows is read from the XP folder (see :mod:`audioflow.config.layout`);
charts are PNG files beside the page and no resource is loaded from elsewhere, so the
folder can be copied, archived or opened without a network.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from audioflow import atomic
from audioflow.config import layout
from audioflow.config.errors import ConfigError
from audioflow.monitoring import names

#: Stages drawn as markers at the update that ended their epoch.
EPOCH_STAGES = ("valid", "evaluate")
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: left; }
th { background: #f3f3f3; } code { background: #f5f5f5; padding: 0 .2em; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 8px; }
figure { margin: 0; } figure img { width: 100%; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #555; }
iframe { width: 100%; height: 460px; border: 1px solid #ccc; }
"""


@dataclass
class XPRecord:
    """What the report reads from one XP folder.

    Args:
        sig: the signature. folder: the XP folder.
        overrides: as given. delta: the key/value pairs of the signature.
        updates_per_epoch: from the XP's config (None when absent).
        history: ``history.json``. updates: ``updates.jsonl`` rows (one per logged update).
        best: ``best.json`` or None. timings: ``timings.jsonl`` rows.
        sample_pages: (epoch, path) of each generate epoch's ``index.html``.
    """

    sig: str
    folder: Path
    overrides: list[str] = field(default_factory=list)
    delta: list = field(default_factory=list)
    updates_per_epoch: int | None = None
    history: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)
    best: dict | None = None
    timings: list[dict] = field(default_factory=list)
    sample_pages: list[tuple[int, Path]] = field(default_factory=list)


def _json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except ValueError as exc:
        problem = f"{path}: not valid JSON ({exc}); rerun the stage that wrote it"
        raise ConfigError(problem) from None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill: the rows before it stand
    return rows


def load_xp(folder: Path) -> XPRecord:
    """Read an XP folder.

    Raises:
        ConfigError: the folder is not an XP folder (no overrides.json), or one of its JSON
            or YAML files is damaged (the message names it).
    """
    folder = Path(folder)
    if not (folder / layout.OVERRIDES_FILE).is_file():
        raise ConfigError(
            f"{folder}: not an XP folder (no {layout.OVERRIDES_FILE}); `audioflow ls` lists XPs"
        )
    config_file = folder / layout.CONFIG_FILE
    try:
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise ConfigError(f"{config_file}: not valid YAML ({problem}); restore it") from None
    if not isinstance(config, dict | type(None)):
        raise ConfigError(f"{config_file}: not a mapping; restore it")
    per_epoch = ((config or {}).get("optim") or {}).get("updates_per_epoch")
    samples = str(((config or {}).get("generate") or {}).get("path") or layout.SAMPLES_DIR)
    updates = {}
    for row in _jsonl(folder / layout.UPDATES_FILE):
        updates[row.get("update")] = row  # a resumed run logs an update again: the last wins
    return XPRecord(
        sig=folder.name,
        folder=folder,
        overrides=list(_json(folder / layout.OVERRIDES_FILE, [])),
        delta=list(_json(folder / layout.DELTA_FILE, [])),
        updates_per_epoch=int(per_epoch) if isinstance(per_epoch, int) else None,
        history=list(_json(folder / layout.HISTORY_FILE, [])),
        updates=[updates[k] for k in sorted(updates, key=lambda u: u or 0)],
        best=_json(folder / layout.BEST_FILE, None),
        timings=_jsonl(folder / layout.TIMINGS_FILE),
        sample_pages=layout.samples_pages(folder, samples),
    )


# -- curves -------------------------------------------------------------------------------
def curves(record: XPRecord) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """Every quantity of the XP: quantity -> series label -> (updates, values).

    Per-update train values come from ``updates.jsonl``; valid and evaluate values sit at
    the update that ended their epoch. Without a per-update history the train stage's
    epoch means are drawn instead.
    """
    out: dict[str, dict[str, tuple[list, list]]] = {}

    def add(quantity: str, label: str, x: float, y) -> None:
        if isinstance(y, int | float) and not isinstance(y, bool):
            xs, ys = out.setdefault(quantity, {}).setdefault(label, ([], []))
            xs.append(x)
            ys.append(float(y))

    for row in record.updates:
        for key, value in row.items():
            if key not in ("update", "time"):
                add(key, "train", row["update"], value)
    per_epoch = record.updates_per_epoch or 1
    stages = EPOCH_STAGES if record.updates else ("train", *EPOCH_STAGES)
    for entry in record.history:
        step = entry["epoch"] * per_epoch
        for stage in stages:
            for key, value in (entry.get(stage) or {}).items():
                add(key, stage, step, value)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "chart"


def chart_order(quantities, best_metric: str | None) -> list[str]:
    """The best-state metric first, then losses, learning rates, the rest, throughput last."""

    def rank(name: str) -> tuple:
        if name == best_metric:
            group = 0
        elif names.is_loss_name(name):
            group = 1
        elif names.is_optim_key(name):
            group = 2
        elif name.startswith(names.THROUGHPUT):
            group = 4
        else:
            group = 3
        return group, name

    return sorted(quantities, key=rank)


def render_charts(records: list[XPRecord], folder: Path) -> list[tuple[str, str]]:
    """One PNG per quantity under ``folder``, every XP overlaid; returns (quantity, file)."""
    import matplotlib

    matplotlib.use("Agg")  # no display where reports are written
    from matplotlib import pyplot as plt

    per_xp = [(r.sig, curves(r)) for r in records]
    quantities = {q for _, c in per_xp for q in c}
    best = next((r.best.get("metric") for r in records if r.best), None)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"train": dict(linestyle="-", marker=None), "valid": dict(linestyle="--", marker="o")}
    styles["evaluate"] = dict(linestyle=":", marker="s")
    folder.mkdir(parents=True, exist_ok=True)
    charts = []
    for quantity in chart_order(quantities, best):
        fig, ax = plt.subplots(figsize=(5.6, 3.2), dpi=90)
        for index, (sig, data) in enumerate(per_xp):
            for label, (xs, ys) in sorted((data.get(quantity) or {}).items()):
                name = label if len(per_xp) == 1 else f"{sig} {label}"
                style = styles.get(label, {})
                ax.plot(xs, ys, label=name, color=colors[index % len(colors)], **style)
        ax.set_title(quantity, fontsize=10)
        ax.set_xlabel("update")
        ax.set_ylabel(quantity, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"{_slug(quantity)}.png"
        fig.savefig(folder / name)
        plt.close(fig)
        charts.append((quantity, name))
    return charts


# -- page ---------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def timing_rows(timings: list[dict]) -> list[list]:
    """Per stage: runs, failed runs, total and mean seconds (the last run of an epoch counts)."""
    last: dict[tuple, dict] = {}
    failed: dict[str, int] = {}
    for row in timings:
        last[(row.get("stage"), row.get("epoch"))] = row
        if not row.get("success", True):
            failed[row.get("stage")] = failed.get(row.get("stage"), 0) + 1
    rows = []
    for stage in layout.STAGES:
        runs = [r for (s, _), r in last.items() if s == stage]
        if runs:
            total = sum(float(r.get("seconds", 0.0)) for r in runs)
            rows.append([stage, len(runs), failed.get(stage, 0), total, total / len(runs)])
    return rows


def _xp_section(record: XPRecord, out_dir: Path) -> str:
    parts = [f"<h2>XP <code>{record.sig}</code></h2>"]
    overrides = " ".join(record.overrides) or "(none: the defaults)"
    parts.append(f"<p>Overrides: <code>{html.escape(overrides)}</code></p>")
    if record.delta:
        parts.append(_table(["key", "value"], [list(pair) for pair in record.delta]))
    if record.best:
        best = record.best
        parts.append(
            f"<p>Best state: epoch {best.get('epoch')}, {html.escape(str(best.get('metric')))}"
            f" = {html.escape(_fmt(best.get('value')))}</p>"
        )
    last_evaluate = next((e for e in reversed(record.history) if "evaluate" in e), None)
    if last_evaluate:
        metrics = sorted(last_evaluate["evaluate"].items())
        parts.append(f"<p>Evaluate at epoch {last_evaluate['epoch']}:</p>")
        parts.append(_table(["metric", "value"], [list(m) for m in metrics]))
    rows = timing_rows(record.timings)
    if rows:
        parts.append("<p>Stage timings:</p>")
        parts.append(_table(["stage", "runs", "failed", "total s", "mean s"], rows))
    if record.sample_pages:
        links = []
        for epoch, page in record.sample_pages:
            href = html.escape(os.path.relpath(page, out_dir))
            links.append(f'<a href="{href}">epoch {epoch}</a>')
        parts.append("<p>Listening pages: " + ", ".join(links) + "</p>")
        latest = html.escape(os.path.relpath(record.sample_pages[-1][1], out_dir))
        parts.append(f'<iframe src="{latest}" title="listening page"></iframe>')
    return "\n".join(parts)


def write_page(records: list[XPRecord], out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` and its charts for one or several XPs.

    Args:
        records: the XPs (one: its report; several: their curves overlaid).
        out_dir: the report folder (created; the page is written atomically, last).

    Returns:
        The page path.
    """
    out_dir = Path(out_dir)
    charts = render_charts(records, out_dir / "charts")
    sigs = ", ".join(r.sig for r in records)
    figures = "\n".join(
        f'<figure><img src="charts/{html.escape(name)}" alt="{html.escape(q)}">'
        f"<figcaption>{html.escape(q)}</figcaption></figure>"
        for q, name in charts
    )
    body = "\n".join(_xp_section(r, out_dir) for r in records)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>audioflow report: {html.escape(sigs)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>audioflow report: {html.escape(sigs)}</h1>"
        f"<p>Written {stamp} from the XP folders. Curves are against the global update; "
        "valid and evaluate sit at the update that ended their epoch.</p>"
        f'{body}<h2>Curves</h2><div class="charts">{figures}</div></body></html>\n'
    )
    target = out_dir / "index.html"
    atomic.write_text(target, page)
    return target
