"""`dvc plots show` of the shipped dvc.yaml over the report CSVs of a real short run.

A temporary git + DVC repository holds this checkout's dvc.yaml and the files the
workflow's `report` rule writes (`python -m audioflow.workflow.report`) for a short demo
codec XP; DVC then shows exactly the plots dvc.yaml declares, one quantity each, drawn as
lines against updates, and they render to PNG/SVG with no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audioflow.config import get_xp
from audioflow.config.xp import set_current_xp
from audioflow.data.manifest import build_manifest
from audioflow.data.synth import write_corpus
from audioflow.solvers.registry import get_solver_class
from audioflow.workflow import dvc_plots

from .dvc_helpers import run

REPO = Path(__file__).resolve().parents[2]
UPDATES = 4  # per epoch, logged every 2: 4 points per train curve over 2 epochs
SHORT = [
    "solver=compression/debug",
    "optim.epochs=2",
    f"optim.updates_per_epoch={UPDATES}",
    "logging.log_updates=2",
    "logging.log_tensorboard=true",
    "dataset.valid.num_samples=8",
    "dataset.evaluate.num_samples=8",
    "generate.max_files=1",
]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC repo with the shipped dvc.yaml and the demo codec's report CSVs."""
    root = tmp_path_factory.mktemp("dvc_plots")
    sources = []
    for split, seed in (("train", 1), ("valid", 2), ("evaluate", 3)):
        write_corpus(root / "data" / split, 8, seed)
        build_manifest([root / "data" / split], root / "data" / split / "m.jsonl.gz", workers=1)
        sources.append(f"datasource.{split}={root / 'data' / split / 'm.jsonl.gz'}")
    sources.append(f"datasource.generate={root / 'data' / 'evaluate' / 'm.jsonl.gz'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        xp = get_xp([*SHORT, *sources])
        set_current_xp(xp)
        get_solver_class(str(xp.cfg.solver))(xp.cfg).run()
        set_current_xp(None)
    repo = root / "repo"
    repo.mkdir()
    shutil.copy2(REPO / "dvc.yaml", repo / "dvc.yaml")
    run("git", "init", "-q", cwd=repo)
    run("dvc", "init", "-q", cwd=repo)
    reports = repo / "reports" / "demo_codec"
    files = [reports / name for name in ("metrics.json", "history.csv", "updates.csv")]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    subprocess.run(
        [sys.executable, "-m", "audioflow.workflow.report", str(xp.folder), *map(str, files)],
        check=True,
        env=env,
    )
    return repo


def test_one_titled_plot_per_quantity_and_no_stray_plot(repo):
    declared = {
        plot_id: plot
        for entry in yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
        for plot_id, plot in entry.items()
    }
    specs = dvc_plots.plot_specs(repo)
    # the demo codec's plots (the LM's files are not there); no stage-level plot of a CSV
    assert set(specs) == {"gen_loss", "sisnr", "mel_distance"} and set(specs) <= set(declared)
    for plot_id, spec in specs.items():
        values = spec["data"]["values"]
        y = declared[plot_id]["y"]
        assert {row["filename::field"] for row in values} == {
            f"{os.path.basename(f)}::{column}" for f, column in y.items()
        }
        train = [r["update"] for r in values if r["filename::field"].startswith("updates.csv")]
        valid = [r["update"] for r in values if r["filename::field"].startswith("history.csv")]
        assert train == [2.0, 4.0, 6.0, 8.0] and valid == [4.0, 8.0]  # one axis: updates
        assert spec["title"]["text"] == declared[plot_id]["title"]
        y_title = spec["layer"][0]["encoding"]["y"]["title"]
        assert y_title == declared[plot_id]["y_label"] and y_title != "y"


def test_plots_render_offline(repo, tmp_path):
    written = dvc_plots.main([str(tmp_path), "--repo", str(repo)])
    assert written == 0
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.stem for p in pngs] == ["gen_loss", "mel_distance", "sisnr"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert (tmp_path / f"{png.stem}.svg").read_text().lstrip().startswith("<svg")
