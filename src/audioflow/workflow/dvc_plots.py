"""Render the plots of ``dvc plots show`` to PNG and SVG files, with no network.

``dvc plots show`` writes an HTML page that loads Vega from a CDN, blank offline. Its
``--json`` output carries each plot as a Vega-Lite spec with the data inline; this renders
those specs locally with vl-convert (Vega's own renderer, shipped in the Python wheel).

``python -m audioflow.workflow.dvc_plots OUT_DIR [--repo .] [-- REVS...]``: one
``<plot id>.png`` and ``.svg`` per plot of dvc.yaml, for the workspace or the revisions
given (as ``dvc plots diff`` compares them).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from audioflow import atomic


def plot_specs(repo: Path, revisions: list[str] | None = None) -> dict[str, dict]:
    """The Vega-Lite spec of every plot DVC shows: plot id -> spec.

    Args:
        repo: the DVC repository.
        revisions: git revisions to compare (``dvc plots diff``); None: the workspace.

    Returns:
        The plots that have data (those whose files do not exist yet are left out).

    Raises:
        RuntimeError: dvc failed (its message is kept).
    """
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    command = [dvc, "plots", "diff", *revisions] if revisions else [dvc, "plots", "show"]
    done = subprocess.run(
        [*command, "--json"], cwd=repo, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    shown = json.loads(done.stdout)
    specs = {}
    for plot_id, renders in (shown.get("data") or {}).items():
        for render in renders:
            # a plot whose files are all missing (a stage not reproduced yet) has no data
            if render.get("type") == "vega" and render["content"].get("data", {}).get("values"):
                specs[plot_id] = _numeric(render["content"])
    return specs


def _numeric(spec: dict) -> dict:
    """The spec with its CSV strings as numbers: DVC inlines CSV cells as text."""

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value

    values = spec.get("data", {}).get("values", [])
    for row in values:
        for key, value in row.items():
            if key not in ("rev", "filename::field", "filename", "field"):
                row[key] = number(value)
    return spec


def render(specs: dict[str, dict], out_dir: Path) -> list[Path]:
    """Write ``<id>.png`` and ``<id>.svg`` for each spec; returns the files written."""
    import vl_convert

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot_id, spec in specs.items():
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", plot_id)
        png = vl_convert.vegalite_to_png(json.dumps(spec), scale=2)
        atomic.write_bytes(out_dir / f"{stem}.png", png)
        atomic.write_text(out_dir / f"{stem}.svg", vl_convert.vegalite_to_svg(json.dumps(spec)))
        written += [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG and SVG files")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository")
    parser.add_argument("revisions", nargs="*", help="git revisions to compare")
    args = parser.parse_args(argv)
    try:
        specs = plot_specs(args.repo, args.revisions or None)
    except (RuntimeError, ValueError) as exc:
        print(f"audioflow dvc plots: {exc}", file=sys.stderr)
        return 2
    if not specs:
        print("audioflow dvc plots: dvc shows no plot (run `dvc repro` first)", file=sys.stderr)
        return 2
    for path in render(specs, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
