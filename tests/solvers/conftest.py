"""Fixtures of the solver tests: a user config folder outside the package and XPs in tmp dirs.

``user_config/`` holds a solver written like AudioCraft's MyNewSolver example and its
config; each test copies it to a temporary folder and uses it through ``--config-dir``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

USER_CONFIG = Path(__file__).parent / "user_config"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_dir(tmp_path, monkeypatch) -> Path:
    """A copy of the user config folder; its solver module importable; XPs under tmp_path."""
    target = tmp_path / "my_configs"
    shutil.copytree(USER_CONFIG, target, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xp_root"))
    monkeypatch.syspath_prepend(str(target))
    sys.modules.pop("my_solver", None)  # each test imports its own copy
    return target


@pytest.fixture
def make_solver(user_dir):
    """``make_solver(*overrides)`` -> a MySolver of the XP those overrides define."""
    from audioflow.config import get_xp
    from audioflow.config.xp import set_current_xp

    def make(*overrides):
        chosen = [] if any(o.startswith("solver=") for o in overrides) else ["solver=my_solver"]
        xp = get_xp([*chosen, *overrides], config_dir=user_dir)
        set_current_xp(xp)
        from audioflow.solvers.registry import get_solver_class

        return get_solver_class(str(xp.cfg.solver))(xp.cfg)

    yield make
    set_current_xp(None)


def subprocess_env(tmp_root: Path, **extra) -> dict:
    """Environment of an ``audioflow`` subprocess: the venv first on PATH, one thread."""
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(OMP_NUM_THREADS="1", AUDIOFLOW_XP_DIR=str(tmp_root), **extra)
    return env


def run_audioflow(user_dir: Path, root: Path, *args: str, **env) -> subprocess.CompletedProcess:
    """``audioflow run ARGS --config-dir USER_DIR`` in a subprocess, XPs under ``root``."""
    cmd = [sys.executable, "-m", "audioflow.cli", "run", *args, "--config-dir", str(user_dir)]
    return subprocess.run(
        cmd, env=subprocess_env(root, **env), capture_output=True, text=True, timeout=300
    )
