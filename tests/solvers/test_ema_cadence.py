"""optim.ema.updates=N steps the EMA every N global updates, across epochs and resumes."""

import pytest


def _record_ema_steps(solver, seen):
    step = solver.ema.step

    def recording():
        seen.append((solver.epoch - 1) * solver.settings.updates_per_epoch + solver.loop.update)
        step()

    solver.ema.step = recording


@pytest.mark.parametrize("every, expected", [(2, [2, 4, 6, 8, 10]), (3, [3, 6, 9])])
def test_ema_steps_every_n_global_updates(make_solver, every, expected):
    # updates_per_epoch=5 (my_solver.yaml): N does not divide the epoch
    solver = make_solver("optim.ema.use=true", f"optim.ema.updates={every}", "optim.epochs=2")
    seen = []
    _record_ema_steps(solver, seen)
    solver.run()
    assert seen == expected


def test_ema_cadence_holds_across_a_mid_epoch_resume(make_solver, monkeypatch):
    overrides = ("optim.ema.use=true", "optim.ema.updates=2", "optim.epochs=2")
    cadence = ("checkpoint.save_every_updates=1",)
    monkeypatch.setenv("MY_SOLVER_CRASH", "raise")
    monkeypatch.setenv("MY_SOLVER_KILL_AT", "7")  # epoch 2, update 2
    first = make_solver(*overrides, *cadence)
    seen = []
    _record_ema_steps(first, seen)
    with pytest.raises(RuntimeError, match="crash at update 7"):
        first.run()
    monkeypatch.delenv("MY_SOLVER_KILL_AT")
    resumed = make_solver(*overrides, *cadence)
    _record_ema_steps(resumed, seen)
    resumed.run()
    assert seen == [2, 4, 6, 8, 10]
