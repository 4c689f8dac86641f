"""Export for every solver: a user's solver from a config folder outside the package
exports and reloads its model with no export code of its own; a solver that declares
``exports = None`` is refused by `audioflow export` and, in a workflow's ``publish:``, by
`snakemake -n` before anything trains."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import torch
import yaml

from audioflow.cli import main
from audioflow.config.xp import set_current_xp
from audioflow.solvers import checkpoint
from audioflow.solvers.exports import declares_no_export, load_export
from audioflow.solvers.registry import SOLVERS, get_solver_class

from .conftest import REPO

NO_EXPORT_SOLVER = '''
from my_solver import MySolver


class NoExportSolver(MySolver):
    """A solver whose models are not meant to leave the XP."""

    exports = None
'''

NO_EXPORT_CONFIG = """# @package __global__
defaults:
  - my_solver
  - _self_

solver: no_export_solver.NoExportSolver
"""


def _train(user_dir, *overrides):
    from audioflow.config import get_xp

    xp = get_xp(["optim.epochs=1", *overrides], config_dir=user_dir)
    set_current_xp(xp)
    try:
        get_solver_class(str(xp.cfg.solver))(xp.cfg).run()
    finally:
        set_current_xp(None)
    return xp


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile from ``cwd``."""
    bin_dir = REPO / ".venv" / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AUDIOFLOW_XP_DIR", None)
    cmd = [str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_user_solver_exports_and_reloads_its_model(user_dir, tmp_path):
    xp = _train(user_dir, "solver=my_solver")
    package = tmp_path / "pkg"
    assert main(["export", xp.sig, "-o", str(package), "--config-dir", str(user_dir)]) == 0
    meta = json.loads((package / "metadata.json").read_text())
    assert meta["solver"] == "my_solver.MySolver" and meta["exports"] == ["model"]
    assert meta["loader"] == "audioflow.solvers.exports:load_solver_models"
    assert meta["lineage"]["signature"] == xp.sig
    model = load_export(package)
    assert isinstance(model, torch.nn.Module) and not model.training
    best = checkpoint.load(xp.folder / checkpoint.BEST, sig=xp.sig, kind="best")
    for key, value in best["state"]["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.randn(4, int(xp.cfg.toy.dim))
    assert model(x).shape == (4, 1)


def test_a_solver_without_exports_is_refused_by_export(user_dir, tmp_path, capsys):
    (user_dir / "no_export_solver.py").write_text(textwrap.dedent(NO_EXPORT_SOLVER))
    (user_dir / "solver" / "no_export.yaml").write_text(NO_EXPORT_CONFIG)
    xp = _train(user_dir, "solver=no_export")
    capsys.readouterr()  # the training logs
    package = tmp_path / "pkg"
    assert main(["export", xp.sig, "-o", str(package), "--config-dir", str(user_dir)]) == 2
    line = _one_line(capsys)
    assert "solver=no_export_solver.NoExportSolver declares no exports" in line
    assert not package.exists()


def test_shipped_solvers_all_export():
    for name in SOLVERS:
        assert not declares_no_export(get_solver_class(name)), name


def test_publish_of_a_non_exporting_solver_is_refused_when_planned(user_dir, tmp_path):
    (user_dir / "no_export_solver.py").write_text(textwrap.dedent(NO_EXPORT_SOLVER))
    (user_dir / "solver" / "no_export.yaml").write_text(NO_EXPORT_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    config = work / "wf.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "config_dir": str(user_dir),
                "xps": [{"name": "toy", "overrides": ["solver=no_export"]}],
                "publish": [{"xp": "toy", "as": "toy_model"}],
                "synth": {"train": {"n": 4}, "valid": {"n": 2}, "evaluate": {"n": 2}},
            }
        )
    )
    out = snakemake(work, "-n", "--configfile", str(config))
    assert out.returncode != 0
    assert "publish: toy_model: solver=no_export_solver.NoExportSolver declares no exports" in (
        out.stdout + out.stderr
    )
    assert not (work / "outputs").exists() and not (work / "reference").exists()
