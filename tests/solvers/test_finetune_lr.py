"""optim.ft_factor with a torch LRScheduler built in build_model (the AudioCraft pattern).

The scheduler owns the LR in the param groups; the optimizer protocol multiplies it by
ft_factor when it steps, so every schedule trains at its LR times ft_factor and nothing
of the scheduler is rewritten. Routing optimizer.step() through the protocol must not
make torch warn that the step was overridden.
"""

import textwrap
import warnings

import pytest

SOLVER = textwrap.dedent(
    '''
    """MySolver with a torch LRScheduler stepped after each optimizer step."""

    import torch
    from my_solver import MySolver


    def make_scheduler(kind, opt, lr, total):
        sched = torch.optim.lr_scheduler
        if kind == "lambda":
            return sched.LambdaLR(opt, lambda s: 1.0)
        if kind == "decay":
            return sched.LambdaLR(opt, lambda s: 0.8**s)
        if kind == "sequential":
            warm = sched.LambdaLR(opt, lambda s: (s + 1) / 3)
            return sched.SequentialLR(opt, [warm, sched.ExponentialLR(opt, 0.9)], [3])
        if kind == "onecycle":
            return sched.OneCycleLR(opt, max_lr=lr, total_steps=total)
        if kind == "cyclic":
            return sched.CyclicLR(opt, lr / 4, lr, step_size_up=3, cycle_momentum=False)
        raise ValueError(kind)


    class MySchedSolver(MySolver):
        def build_model(self):
            super().build_model()
            optim = self.cfg.optim
            total = optim.epochs * optim.updates_per_epoch
            self.scheduler = make_scheduler(self.cfg.sched.kind, self.optimizer, optim.lr, total)
            if self.cfg.sched.register:
                self.register_stateful("scheduler")
            self.lrs = []

        def run_step(self, idx, batch, metrics):
            if self.is_training:  # the LR the update steps with
                self.lrs.append(self.protocol.lrs()["main"])
            metrics = super().run_step(idx, batch, metrics)
            if self.is_training:
                self.scheduler.step()
            return metrics
    '''
)
CONFIG = textwrap.dedent(
    """
    # @package __global__
    defaults:
      - my_solver
      - _self_

    solver: my_sched_solver.MySchedSolver
    sched:
      kind: lambda
      register: true
    """
)


@pytest.fixture
def make_sched_solver(user_dir, make_solver):
    (user_dir / "my_sched_solver.py").write_text(SOLVER)
    (user_dir / "solver" / "my_sched_solver.yaml").write_text(CONFIG)

    def make(*overrides):
        return make_solver("solver=my_sched_solver", "optim.epochs=2", *overrides)

    return make


def _run(solver):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solver.run()
    return [str(w.message) for w in caught if "lr_scheduler" in str(w.message)]


def test_constant_lambda_schedule_trains_at_lr_times_ft_factor(make_sched_solver):
    solver = make_sched_solver("optim.ft_factor=0.1")  # optim.lr=1e-2 in my_solver.yaml
    torch_warnings = _run(solver)
    assert solver.lrs == pytest.approx([1e-3] * 10)
    assert solver.protocol.lrs()["main"] == pytest.approx(1e-3)
    assert solver.scheduler.get_last_lr() == pytest.approx([1e-2])  # the schedule's own
    assert torch_warnings == []


@pytest.mark.parametrize("kind", ["decay", "sequential", "onecycle", "cyclic"])
@pytest.mark.parametrize("register", [True, False])
def test_schedule_with_ft_factor_is_the_schedule_of_the_scaled_lr(
    make_sched_solver, kind, register
):
    flag = f"sched.register={str(register).lower()}"
    tuned = make_sched_solver(f"sched.kind={kind}", flag, "optim.ft_factor=0.1")
    torch_warnings = _run(tuned)
    reference = make_sched_solver(f"sched.kind={kind}", flag, "optim.lr=1e-3")
    _run(reference)
    assert len(tuned.lrs) == 10 and len(set(tuned.lrs)) > 1
    assert tuned.lrs == pytest.approx(reference.lrs, rel=1e-6)
    assert torch_warnings == []


def test_skipped_nonfinite_step_does_not_make_torch_warn(make_sched_solver):
    solver = make_sched_solver("optim.ft_factor=0.1", "toy.nan_from=1", "toy.nan_until=1")
    torch_warnings = _run(solver)
    assert solver.lrs == pytest.approx([1e-3] * 10)
    assert "skipped" in (solver.folder / "solver.log").read_text()  # update 1 was skipped
    assert torch_warnings == []


def test_bad_ft_factor_is_one_clear_error(make_sched_solver):
    from audioflow.optim import OptimConfigError

    with pytest.raises(OptimConfigError, match=r"optim.ft_factor=-1: must be a number > 0"):
        make_sched_solver("optim.ft_factor=-1")


def test_scheduler_built_after_the_solver_still_skips_nonfinite(make_solver):
    import torch

    solver = make_solver("optim.epochs=1")  # the optimizer is the protocol's from here on
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched = torch.optim.lr_scheduler.LambdaLR(solver.optimizer, lambda s: 0.5)
        for p in solver.model.parameters():
            p.grad = torch.full_like(p, float("nan"))
        before = [p.detach().clone() for p in solver.model.parameters()]
        with solver.protocol.micro_step(1):  # what the train loop does around run_step
            solver.optimizer.step()
            sched.step()
        window = solver.protocol.finish_micro_step()
    assert window.skipped == ["main"] and solver.protocol.skips == {"main": 1}
    assert all(torch.equal(a, p) for a, p in zip(before, solver.model.parameters()))
    assert [str(w.message) for w in caught if "lr_scheduler" in str(w.message)] == []


def test_resume_keeps_the_scaled_schedule_without_scaling_twice(make_sched_solver, monkeypatch):
    overrides = ("optim.ft_factor=0.1", "sched.kind=decay", "checkpoint.save_every_updates=1")
    monkeypatch.setenv("MY_SOLVER_CRASH", "raise")
    monkeypatch.setenv("MY_SOLVER_KILL_AT", "7")  # in run_step, before update 7's step
    killed = make_sched_solver(*overrides)
    with pytest.raises(RuntimeError, match="crash at update 7"):
        killed.run()
    monkeypatch.delenv("MY_SOLVER_KILL_AT")
    resumed = make_sched_solver(*overrides)
    resumed.run()  # the checkpoint's optimizer and scheduler replace the freshly scaled ones
    assert killed.lrs[:6] + resumed.lrs == pytest.approx([1e-3 * 0.8**k for k in range(10)])
