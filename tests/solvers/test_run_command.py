"""`audioflow run`: argument errors, unknown solver, held lock, a stage through the CLI."""

import json

from audioflow import cli
from audioflow.config.lock import xp_lock


def _run(capsys, *argv):
    code = cli.main(["run", *argv])
    return code, capsys.readouterr().err


def test_bad_arguments_exit_2_with_one_line(user_dir, capsys):
    code, err = _run(capsys, "solver=my_solver", "--stage", "train", "--config-dir", str(user_dir))
    assert code == 2 and "--stage and --epoch go together" in err
    code, err = _run(capsys, "solver=my_solver", "--config-dir", str(user_dir / "nope"))
    assert code == 2 and "nope" in err
    code, err = _run(capsys, "solver=my_solver", "solver.typo=1", "--config-dir", str(user_dir))
    assert code == 2 and "solver.typo" in err


def test_unknown_solver_class_is_a_config_error(user_dir, capsys):
    text = (user_dir / "solver" / "my_solver.yaml").read_text()
    text = text.replace("solver: my_solver.MySolver", "solver: my_solver.Nope")
    (user_dir / "solver" / "broken.yaml").write_text(text)
    code, err = _run(capsys, "solver=broken", "--config-dir", str(user_dir))
    assert code == 2 and "solver=my_solver.Nope: module my_solver has no class Nope" in err


def test_stage_via_cli_and_lock_refusal(user_dir, capsys, tmp_path):
    args = ["solver=my_solver", "optim.epochs=1", "--config-dir", str(user_dir)]
    code, err = _run(capsys, *args, "--stage", "train", "--epoch", "1")
    assert code == 0, err
    (folder,) = (tmp_path / "xp_root" / "xps").iterdir()
    assert json.loads((folder / "stages" / "train_1.json").read_text())["loss"] > 0
    with xp_lock(folder, "valid"):
        code, err = _run(capsys, *args, "--stage", "valid", "--epoch", "1")
    assert code == 2 and "already running its valid stage" in err
    code, err = _run(capsys, *args, "--stage", "evaluate", "--epoch", "1")
    assert code == 1 and "no best state yet" in err
