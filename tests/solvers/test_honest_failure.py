"""A stage whose weights or metrics are not finite fails with one line and is never done."""

import json

import pytest

from audioflow.solvers.base import NonFiniteStageError

from .conftest import run_audioflow


def _strict(path):
    """JSON without bare NaN/Infinity (what strict parsers accept)."""

    def refuse(name):
        raise ValueError(f"{path.name} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_diverged_weights_fail_the_stage_and_leave_no_marker(make_solver):
    solver = make_solver("optim.epochs=1", "optim.optimizer=sgd", "optim.lr=1e30")
    with pytest.raises(NonFiniteStageError, match="valid epoch 1: non-finite metrics"):
        solver.run()
    stages = solver.folder / "stages"
    assert not (stages / "valid_1.json").exists()
    train = _strict(stages / "train_1.json")  # the updates after the blow-up were skipped
    assert train["skipped_updates"] >= 1
    _strict(solver.folder / "history.json")


def test_an_infinite_lr_is_refused_with_one_line(user_dir, tmp_path):
    done = run_audioflow(user_dir, tmp_path / "root", "solver=my_solver", "optim.lr=inf")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "optim.lr" in line]
    assert lines and "must be a finite number > 0" in lines[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
