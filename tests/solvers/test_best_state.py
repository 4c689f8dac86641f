"""The best state never takes a non-finite valid metric, and a stored one does not lock it."""

import json
import math

import pytest

from audioflow.solvers import checkpoint
from audioflow.solvers.state import BestState


def test_nan_metric_is_never_best_and_a_later_finite_one_is(make_solver):
    solver = make_solver("optim.epochs=1")
    solver.epoch = 1
    assert solver._update_best({"loss": float("nan")}) is False
    assert solver.best.value is None and not (solver.folder / "best.th").exists()
    log = (solver.folder / "solver.log").read_text()
    assert "epoch 1: valid loss=nan is not finite" in log
    solver.epoch = 2
    assert solver._update_best({"loss": 0.1}) is True
    assert (solver.best.value, solver.best.epoch) == (0.1, 2)
    best = checkpoint.load(solver.folder / "best.th", sig=solver.xp.sig, kind="best")
    assert (best["value"], best["epoch"]) == (0.1, 2)


@pytest.mark.parametrize("lower", [True, False])
def test_infinite_metric_is_never_best(make_solver, lower):
    solver = make_solver("optim.epochs=1", f"best.lower_is_better={str(lower).lower()}")
    solver.epoch = 1
    assert solver._update_best({"loss": 1.0}) is True
    solver.epoch = 2
    assert solver._update_best({"loss": -math.inf if lower else math.inf}) is False
    assert (solver.best.value, solver.best.epoch) == (1.0, 1)


def test_stored_nan_best_counts_as_no_best(make_solver):
    # a best.th holding NaN, as runs before this fix wrote it
    first = make_solver("optim.epochs=1")
    first.epoch = 1
    first.best = BestState(first.stateful.snapshot(first.stateful.best), math.nan, 1)
    first.best.save(first.folder, first.xp.sig, "loss", {"loss": math.nan})
    solver = make_solver("optim.epochs=1")
    solver.run()
    best = json.loads((solver.folder / "best.json").read_text())
    valid = json.loads((solver.folder / "stages" / "valid_1.json").read_text())
    assert best["epoch"] == 1 and best["value"] == valid["loss"]
    assert math.isfinite(solver.best.value)
