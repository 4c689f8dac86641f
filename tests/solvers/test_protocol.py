"""The optimizer protocol seen from a solver: memory under accumulation, None losses,
per-optimizer skips, grad norms and LRs reported (two OptimSchedulers, named losses)."""

import json
import math
import weakref

import torch


class _Box:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor


class SavedBytes:
    """Bytes of the tensors autograd keeps for backward right now, and the peak."""

    def __init__(self):
        self.live = self.peak = 0

    def pack(self, tensor):
        size = tensor.numel() * tensor.element_size()
        # detached: a saved output would otherwise hold its own grad_fn (a cycle gc cannot see)
        box = _Box(tensor.detach())  # lives as long as autograd keeps the saved tensor
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(box, self._release, size)
        return box

    def _release(self, size):
        self.live -= size

    @staticmethod
    def unpack(box):
        return box.tensor


def _peak_saved(make_solver, *overrides):
    solver = make_solver("solver=two_loss_solver", "toy.hidden=256", *overrides)
    meter = SavedBytes()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        solver.run()
    return meter.peak


def test_memory_does_not_grow_with_accum_grad(make_solver):
    one = _peak_saved(make_solver, "optim.epochs=1", "optim.accum_grad=1")
    four = _peak_saved(make_solver, "optim.epochs=1", "optim.accum_grad=4")
    assert one > 0
    assert four <= 1.1 * one, (one, four)  # was ~4x: every micro-step's graph kept alive


def _train(solver, epoch=1):
    return json.loads((solver.folder / "stages" / f"train_{epoch}.json").read_text())


def test_a_none_loss_sits_out_a_micro_step_and_keeps_the_window_gradients(make_solver):
    solver = make_solver(
        "solver=two_loss_solver",
        "optim.epochs=1",
        "optim.accum_grad=2",
        "toy.critic_none_last=true",
    )
    before = [p.detach().clone() for p in solver.model.critic.parameters()]
    solver.run()
    protocol = solver.protocol
    # the critic's loss is None on the last micro-step of every window: its update still
    # happens, from the first micro-step's gradients
    assert protocol["gen"].real_step == protocol["critic"].real_step == 5
    after = list(solver.model.critic.parameters())
    assert not any(torch.equal(a, b) for a, b in zip(before, after))


def test_a_skip_is_per_optimizer(make_solver):
    solver = make_solver("solver=two_loss_solver", "optim.epochs=1", "optim.ema.use=true",
                         "toy.nan_gen_at=2")  # fmt: skip
    ema_steps = []
    step = solver.ema.step
    solver.ema.step = lambda: (ema_steps.append(solver.loop.update), step())
    solver.run()
    protocol = solver.protocol
    assert (protocol["gen"].real_step, protocol["gen"].skipped_updates) == (4, 1)
    assert protocol["critic"].real_step == 5  # the critic moved at update 2
    assert ema_steps == [1, 2, 3, 4, 5]  # EMA follows the optimizer that moved
    train = _train(solver)
    assert math.isfinite(train["gen_loss"]) and math.isfinite(train["critic_loss"])
    assert train["skipped_updates"] == 1
    log = (solver.folder / "solver.log").read_text()
    assert "non-finite loss gen_loss (gen), update skipped (1 in a row)" in log


def _record_updates(solver) -> list[dict]:
    """Every update's metrics as the per-update reports get them."""
    seen = []
    report = solver.reporter.report

    def recording(shown, metrics, window, *args):
        seen.append({**metrics, **window.metrics()})
        report(shown, metrics, window, *args)

    solver.reporter.report = recording
    return seen


def test_grad_norm_and_lr_of_each_optimizer_are_reported(make_solver):
    solver = make_solver("solver=two_loss_solver", "optim.epochs=1")
    seen = _record_updates(solver)
    solver.run()
    assert len(seen) == 5  # one per update
    for metrics in seen:
        assert metrics["lr/gen"] == metrics["lr/critic"] == 1e-2
        assert float(metrics["grad_norm/gen"]) > 0 and float(metrics["grad_norm/critic"]) > 0
    plain = make_solver("optim.epochs=1")  # AudioCraft style: self.optimizer is "main"
    seen = _record_updates(plain)
    plain.run()
    assert len(seen) == 5
    assert all(float(m["grad_norm/main"]) > 0 and m["lr/main"] == 1e-2 for m in seen)
