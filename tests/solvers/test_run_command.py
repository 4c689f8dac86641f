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


def test_unknown_solver_class_is_a_config_error(user_dir, capsys, tmp_path):
    text = (user_dir / "solver" / "my_solver.yaml").read_text()
    text = text.replace("solver: my_solver.MySolver", "solver: my_solver.Nope")
    (user_dir / "solver" / "broken.yaml").write_text(text)
    code, err = _run(capsys, "solver=broken", "--config-dir", str(user_dir))
    assert code == 2 and "solver=my_solver.Nope: module my_solver has no class Nope" in err
    # refused before any XP folder exists: `audioflow ls` shows no ghost XP
    assert not (tmp_path / "xp_root" / "xps").exists()


def test_out_of_range_values_are_refused_before_any_folder(user_dir, capsys, tmp_path):
    for override, line in [
        ("optim.epochs=0", "optim.epochs=0: must be at least 1"),
        ("optim.updates_per_epoch=-1", "optim.updates_per_epoch=-1: must be at least 1"),
        ("dataset.batch_size=0", "dataset.batch_size=0: must be at least 1"),
        ("device=tpu", "device=tpu: use cpu, cuda, cuda:N or mps"),
        ("optim.precision=fp8", "optim.precision=fp8: use one of fp32, bf16, fp16"),
        ("monitoring.port=70000", "monitoring.port=70000: give a TCP port 1-65535, or 0"),
        ("monitoring.pushgateway=http://pg:909l", "monitoring.pushgateway=http://pg:909l: give"),
    ]:
        code, err = _run(capsys, "solver=my_solver", override, "--config-dir", str(user_dir))
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"audioflow run: {line}"), err
    assert not (tmp_path / "xp_root" / "xps").exists()


def test_epoch_past_the_last_is_refused_and_nothing_trains(user_dir, capsys, tmp_path):
    args = ["solver=my_solver", "optim.epochs=1", "--config-dir", str(user_dir)]
    code, err = _run(capsys, *args, "--stage", "train", "--epoch", "5")
    assert code == 2 and "--epoch 5: this XP has optim.epochs=1" in err
    assert not (tmp_path / "xp_root" / "xps").exists()
    assert _run(capsys, *args)[0] == 0  # a finished XP keeps its folder when refused later
    code, err = _run(capsys, *args, "--stage", "train", "--epoch", "2")
    assert code == 2
    (folder,) = (tmp_path / "xp_root" / "xps").iterdir()
    assert json.loads((folder / "history.json").read_text())[-1]["epoch"] == 1


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
