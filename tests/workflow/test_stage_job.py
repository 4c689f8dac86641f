"""A stage job runs only on the signature the workflow planned for it (`--expect-sig`).

The planner signs an XP; then a default it overrides is edited, so that the same overrides
now sign differently. The stage job, as the rule and the Kubernetes launcher run it, must
refuse with one line and exit 2 before anything is written (also with `-d 2`, before
torchrun spawns workers).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from audioflow import cli
from audioflow.config import signature
from audioflow.config.grids import XPSpec
from audioflow.workflow.plan import resolve_plans

USER_CONFIG = Path(__file__).resolve().parents[1] / "solvers" / "user_config"
OVERRIDES = ("solver=my_solver", "optim.lr=0.5")


@pytest.fixture
def planned(tmp_path, monkeypatch):
    """(config folder, planned signature) of an XP planned by the workflow's planner."""
    config_dir = tmp_path / "my_configs"
    shutil.copytree(USER_CONFIG, config_dir, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xp_root"))
    monkeypatch.syspath_prepend(str(config_dir))
    (plan,) = resolve_plans([XPSpec("demo", OVERRIDES)], config_dir=str(config_dir))
    assert plan.sig == signature(OVERRIDES, config_dir)
    return config_dir, plan.sig


def stage_job(capsys, config_dir: Path, sig: str, *extra: str) -> tuple[int, str]:
    """The command of a stage rule (workflow/rules/stages.smk), run in this process."""
    argv = ["run", *OVERRIDES, "--config-dir", str(config_dir), "--expect-sig", sig]
    code = cli.main([*argv, "--stage", "train", "--epoch", "1", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("extra", [(), ("-d", "2")], ids=["one process", "torchrun"])
def test_stage_job_refuses_a_signature_other_than_planned(planned, capsys, tmp_path, extra):
    config_dir, sig = planned
    solver_file = config_dir / "solver" / "my_solver.yaml"
    # The default becomes the overridden value: optim.lr leaves the delta, the sig changes.
    solver_file.write_text(solver_file.read_text().replace("lr: 1.0e-2", "lr: 0.5"))
    now = signature(OVERRIDES, config_dir)
    assert now != sig
    code, err = stage_job(capsys, config_dir, sig, *extra)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"audioflow run: these overrides sign as {now}, not {sig}")
    assert not (tmp_path / "xp_root").exists()  # nothing written, no XP folder


def test_stage_job_on_the_planned_signature_gets_past_the_check(planned, capsys, tmp_path):
    config_dir, sig = planned
    # Refused one step later, for an epoch this XP does not have: the signature was accepted.
    code, err = stage_job(capsys, config_dir, sig, "--epoch", "9")
    assert code == 2 and "--epoch 9: this XP has optim.epochs=2" in err, err
    assert "sign as" not in err


def test_expect_sig_must_be_a_signature(planned, capsys, tmp_path):
    config_dir, _ = planned
    code, err = stage_job(capsys, config_dir, "../../x")
    assert code == 2 and err.count("\n") == 1 and "--expect-sig ../../x" in err
    assert not (tmp_path / "xp_root").exists()
