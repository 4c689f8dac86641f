"""An evaluate/generate run for an epoch whose best state a later valid replaced says so."""

from audioflow.solvers import checkpoint


def test_a_stage_on_a_later_best_state_warns_in_the_log(make_solver):
    solver = make_solver("optim.epochs=2")
    solver.run_stage("train", 2)
    make_solver("optim.epochs=2").run_stage("valid", 1)
    make_solver("optim.epochs=2").run_stage("valid", 2)
    best = checkpoint.load(solver.folder / checkpoint.BEST)
    best["epoch"] = 2  # as if epoch 2 validated better (the toy may or may not)
    checkpoint.save({k: v for k, v in best.items() if k not in ("format", "version")},
                    solver.folder / checkpoint.BEST)  # fmt: skip
    make_solver("optim.epochs=2").run_stage("generate", 1)
    log = (solver.folder / "solver.log").read_text()
    assert "generate epoch 1 runs on the best state of epoch 2 (validated later)" in log
    make_solver("optim.epochs=2").run_stage("generate", 2)
    assert (
        "generate epoch 2 runs on the best state" not in (solver.folder / "solver.log").read_text()
    )
