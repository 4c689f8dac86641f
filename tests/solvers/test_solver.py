"""The MyNewSolver-style user solver: train, valid, best state, EMA, checkpoints, stages."""

import json

import pytest
import torch

from audioflow.solvers import checkpoint
from audioflow.solvers.base import NonFiniteLossError


def _ckpt(solver, name="checkpoint.th"):
    return checkpoint.load(solver.folder / name, sig=solver.xp.sig)


def test_whole_loop_trains_validates_and_keeps_best_ema_and_checkpoints(make_solver):
    solver = make_solver("optim.ema.use=true", "optim.epochs=3", "logging.log_tensorboard=true")
    solver.run()
    folder = solver.folder
    hist = json.loads((folder / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert all(set(h) == {"epoch", "train", "valid", "evaluate", "generate"} for h in hist)
    assert hist == solver.history
    state = _ckpt(solver)
    # exactly updates_per_epoch updates per epoch, though the loader holds 3 batches
    assert state["state"]["optimizer"]["state"][0]["step"].item() == 15
    assert [h["epoch"] for h in state["state"]["history"]] == [1, 2, 3]
    assert state["state"]["loop"]["micro"] == 0  # the last epoch is done
    assert {"model", "optimizer", "ema", "loop", "history", "best"} <= set(state["state"])
    best = json.loads((folder / "best.json").read_text())
    losses = [h["valid"]["loss"] for h in hist]
    assert best["value"] == min(losses) and best["epoch"] == losses.index(min(losses)) + 1
    best_th = checkpoint.load(folder / "best.th", sig=solver.xp.sig, kind="best")
    # valid ran on the EMA weights, and those are what the best state keeps
    assert best["epoch"] == 3  # the toy problem improves every epoch
    ema_w = state["state"]["ema"]["state"]["model"]["0.weight"]
    torch.testing.assert_close(best_th["state"]["model"]["0.weight"], ema_w)
    assert not torch.equal(ema_w, state["state"]["model"]["0.weight"])
    assert sorted(p.name for p in folder.glob("checkpoint_*.th")) == [
        "checkpoint_2.th",
        "checkpoint_3.th",
    ]  # keep_last=2 deleted epoch 1
    assert (folder / "samples" / "epoch_3" / "pred.th").exists()
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert "valid epoch 3" in (folder / "solver.log").read_text()


def test_valid_uses_ema_weights(make_solver):
    solver = make_solver("optim.ema.use=true", "optim.ema.decay=0.5", "optim.epochs=1")
    solver.run()
    valid_loss = json.loads((solver.folder / "stages" / "valid_1.json").read_text())["loss"]
    ema = solver.ema.state["model"]
    with torch.no_grad():
        solver.model.load_state_dict(ema)
        solver.model.eval()
        losses = [
            float(solver.criterion(solver.model(x), y)) for x, y in solver.dataloaders["valid"]
        ]
    assert valid_loss == pytest.approx(sum(losses) / len(losses), rel=1e-6)


def test_every_runs_evaluate_and_generate_on_schedule_and_last_epoch(make_solver):
    solver = make_solver("optim.epochs=3", "evaluate.every=2", "generate.every=0")
    solver.run()
    names = sorted(p.name for p in (solver.folder / "stages").iterdir())
    assert "evaluate_2.json" in names and "evaluate_3.json" in names
    assert "evaluate_1.json" not in names
    assert [n for n in names if n.startswith("generate")] == ["generate_3.json"]


def test_keep_last_zero_keeps_all_and_save_every(make_solver):
    solver = make_solver("optim.epochs=4", "checkpoint.keep_last=0", "checkpoint.save_every=3")
    solver.run()
    # every 3rd epoch, plus the last one
    assert [e for e, _ in checkpoint.epoch_checkpoints(solver.folder)] == [3, 4]


def test_nonfinite_losses_skip_updates_and_are_counted(make_solver):
    solver = make_solver("optim.epochs=1", "toy.nan_from=2", "toy.nan_until=3")
    solver.run()
    state = _ckpt(solver)
    assert state["state"]["optimizer"]["state"][0]["step"].item() == 3  # 5 - 2 skipped
    assert all(torch.isfinite(v).all() for v in state["state"]["model"].values())
    assert (
        "non-finite loss loss, update skipped (2 in a row)"
        in (solver.folder / "solver.log").read_text()
    )


def test_too_many_nonfinite_losses_stop_the_run_naming_the_loss(make_solver):
    solver = make_solver("optim.epochs=1", "toy.nan_from=2", "optim.max_nonfinite=2")
    with pytest.raises(NonFiniteLossError, match="3 consecutive updates with non-finite loss loss"):
        solver.run()


def test_corrupt_latest_checkpoint_falls_back_to_previous(make_solver):
    solver = make_solver("optim.epochs=2")
    solver.run()
    (solver.folder / "checkpoint.th").write_bytes(b"truncated")
    resumed = make_solver("optim.epochs=2")
    assert resumed.restore()
    assert resumed.trained_epochs == 2 and resumed.loop.micro == 0
    assert "refusing" in (resumed.folder / "solver.log").read_text()


def test_continue_from_loads_best_state_and_applies_ft_factor(make_solver):
    first = make_solver("optim.epochs=1")
    first.run()
    best = checkpoint.load(first.folder / "best.th", kind="best")["state"]["model"]
    second = make_solver("optim.epochs=1", f"continue_from={first.xp.sig}", "optim.ft_factor=0.1")
    assert second.protocol.lrs()["main"] == pytest.approx(1e-3)  # the LR it steps with
    assert not second.restore()  # a fresh XP: nothing of its own to resume
    for key, value in best.items():
        torch.testing.assert_close(second.model.state_dict()[key], value)
    third = make_solver("optim.epochs=1", f"continue_from={first.folder / 'checkpoint.th'}")
    third.restore()
    torch.testing.assert_close(third.model.state_dict()["0.weight"], best["0.weight"])


def test_continue_from_package_folder(make_solver, tmp_path):
    first = make_solver("optim.epochs=1")
    first.run()
    package = tmp_path / "package"
    package.mkdir()
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    torch.save(weights, package / "model.th")
    second = make_solver("optim.epochs=1", f"continue_from={package}")
    second.restore()
    for key, value in weights.items():
        torch.testing.assert_close(second.model.state_dict()[key], value)


def test_stages_one_by_one_match_the_workflow_contract(make_solver):
    solver = make_solver("optim.epochs=2", "checkpoint.keep_last=1")
    train1 = solver.run_stage("train", 1)
    assert (solver.folder / "stages" / "train_1.json").exists()
    assert (solver.folder / "checkpoint_1.th").exists()
    solver = make_solver("optim.epochs=2", "checkpoint.keep_last=1")
    solver.run_stage("train", 2)
    # keep_last=1 must keep checkpoint_1.th: epoch 1 is not validated yet
    assert (solver.folder / "checkpoint_1.th").exists()
    solver = make_solver("optim.epochs=2", "checkpoint.keep_last=1")
    valid1 = solver.run_stage("valid", 1)
    assert json.loads((solver.folder / "best.json").read_text())["epoch"] == 1
    assert not (solver.folder / "checkpoint_1.th").exists()  # validated: now deletable
    solver = make_solver("optim.epochs=2", "checkpoint.keep_last=1")
    assert solver.run_stage("train", 2) == json.loads(
        (solver.folder / "stages" / "train_2.json").read_text()
    )  # already trained: a no-op
    (solver.folder / "stages" / "train_2.json").unlink()  # as if killed before the marker
    solver = make_solver("optim.epochs=2", "checkpoint.keep_last=1")
    assert solver.run_stage("train", 2)["loss"] > 0
    assert (solver.folder / "stages" / "train_2.json").exists()
    solver.run_stage("valid", 2)
    evaluated = solver.run_stage("evaluate", 2)
    hist = json.loads((solver.folder / "history.json").read_text())
    assert hist[0] == {"epoch": 1, "train": train1, "valid": valid1}
    assert hist[1]["evaluate"] == evaluated
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint_5.th"):
        solver.run_stage("valid", 5)


def _weights(solver):
    return {k: v.clone() for k, v in solver.model.state_dict().items()}


def test_optim_sches_path_accumulates_and_counts_updates(make_solver):
    solver = make_solver("solver=my_loss_solver", "optim.accum_grad=2", "optim.ema.use=true")
    solver.run()
    assert solver.optim_sches.real_step == 10  # 2 epochs x 5 updates, 2 micro-batches each
    state = _ckpt(solver)
    assert state["state"]["protocol"]["real_step"] == 10
    assert {"model", "protocol", "ema", "loop"} <= set(state["state"])


def test_optim_sches_path_nonfinite_policy(make_solver):
    # NaN losses are injected at updates counted by real_step + skipped_updates
    solver = make_solver(
        "solver=my_loss_solver", "optim.epochs=1", "toy.nan_from=2", "optim.max_nonfinite=2"
    )
    with pytest.raises(NonFiniteLossError, match="non-finite loss loss"):
        solver.run()  # the rest of the epoch is NaN: 3 > max_nonfinite
    solver = make_solver(
        "solver=my_loss_solver", "optim.epochs=1", "toy.nan_from=2", "toy.nan_until=3"
    )
    solver.run()
    assert solver.optim_sches.real_step == 3 and solver.optim_sches.skipped_updates == 2


def test_optim_sches_path_resumes_exactly_after_a_crash(make_solver, monkeypatch):
    overrides = ("solver=my_loss_solver", "optim.accum_grad=2", "checkpoint.save_every_updates=1")
    straight = make_solver(*overrides)
    straight.run()
    expected = _weights(straight)
    history = list(straight.history)
    for path in straight.folder.iterdir():  # same XP again, from scratch
        if path.is_file():
            path.unlink()
    monkeypatch.setenv("MY_SOLVER_KILL_AT", "7")
    with pytest.raises(RuntimeError, match="crash at update 7"):
        make_solver(*overrides).run()
    monkeypatch.delenv("MY_SOLVER_KILL_AT")
    resumed = make_solver(*overrides)
    resumed.run()
    for key, value in expected.items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.history == history


def test_unknown_best_metric_is_a_config_error(make_solver):
    from audioflow.config.errors import ConfigError

    solver = make_solver("optim.epochs=1", "best.metric=accuracy")
    with pytest.raises(ConfigError, match="best.metric='accuracy' is not a valid metric"):
        solver.run()


def test_whole_loop_after_a_stage_run_finishes_the_trained_epoch(make_solver):
    make_solver("optim.epochs=2").run_stage("train", 1)
    solver = make_solver("optim.epochs=2")
    solver.run()
    hist = json.loads((solver.folder / "history.json").read_text())
    assert [sorted(h) for h in hist] == [["epoch", "evaluate", "generate", "train", "valid"]] * 2
    assert _ckpt(solver)["state"]["optimizer"]["state"][0]["step"].item() == 10


@pytest.mark.parametrize("where", ["MY_SOLVER_KILL_AT=5", "MY_SOLVER_KILL_IN_VALID=1"])
def test_crash_then_resume_matches_an_uninterrupted_run(make_solver, monkeypatch, where):
    overrides = ("optim.ema.use=true", "checkpoint.save_every_updates=1")
    straight = make_solver(*overrides)
    straight.run()
    expected, history = _weights(straight), list(straight.history)
    for path in straight.folder.iterdir():  # same XP again, from scratch
        if path.is_file():
            path.unlink()
    name, value = where.split("=")
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("MY_SOLVER_CRASH", "raise")
    with pytest.raises(RuntimeError, match="crash at"):
        make_solver(*overrides).run()
    monkeypatch.delenv(name)
    resumed = make_solver(*overrides)
    resumed.run()
    for key, value in expected.items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.history == history


def _rewrite(path, **changes):
    """Change registered states of a saved checkpoint payload (as a crash would leave it)."""
    payload = checkpoint.load(path)
    payload["state"].update(changes)
    checkpoint.save({k: v for k, v in payload.items() if k not in ("format", "version")}, path)


def test_train_stage_killed_after_the_last_mid_epoch_save_finishes_the_epoch(make_solver):
    overrides = ("optim.epochs=2", "checkpoint.save_every_updates=5")
    solver = make_solver(*overrides)

    def killed(*args, **kwargs):  # after the mid-epoch save of update 5/5, before the commit
        raise RuntimeError("killed")

    solver.commit = killed
    with pytest.raises(RuntimeError, match="killed"):
        solver.run_stage("train", 1)
    assert checkpoint.load(solver.folder / "checkpoint.th")["state"]["loop"]["update"] == 5
    assert not (solver.folder / "checkpoint_1.th").exists()
    metrics = make_solver(*overrides).run_stage("train", 1)
    assert metrics["loss"] > 0
    assert (solver.folder / "checkpoint_1.th").exists()
    assert json.loads((solver.folder / "stages" / "train_1.json").read_text()) == metrics
    assert make_solver(*overrides).run_stage("valid", 1)["loss"] > 0


def test_whole_loop_after_stage_runs_keeps_the_best_state_of_best_th(make_solver):
    make_solver("optim.epochs=2").run_stage("train", 1)
    make_solver("optim.epochs=2").run_stage("valid", 1)
    solver = make_solver("optim.epochs=2")
    best = checkpoint.load(solver.folder / checkpoint.BEST)
    best["value"] = -1.0  # a best no epoch can beat
    checkpoint.save({k: v for k, v in best.items() if k not in ("format", "version")},
                    solver.folder / checkpoint.BEST)  # fmt: skip
    solver.run()
    best = checkpoint.load(solver.folder / checkpoint.BEST)
    assert (best["epoch"], best["value"]) == (1, -1.0)


EXACT = ("toy.dropout=0.0", "toy.noise=0.0", "optim.epochs=1")


def test_audiocraft_style_accum_grad_equals_the_big_batch(make_solver):
    """self.optimizer.step() in run_step gets optim.accum_grad: 2 x 4 == 1 x 8."""
    big = make_solver(*EXACT)
    big.run()
    small = make_solver(*EXACT, "optim.accum_grad=2", "dataset.batch_size=4")
    small.run()
    assert _ckpt(small)["state"]["optimizer"]["state"][0]["step"].item() == 5
    for key, value in _weights(big).items():
        torch.testing.assert_close(small.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_audiocraft_style_bf16_autocasts_run_step(make_solver):
    fp32 = make_solver(*EXACT)
    fp32.run()
    bf16 = make_solver(*EXACT, "optim.precision=bf16", "optim.accum_grad=2")
    bf16.run()
    weights = _weights(bf16)
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert not all(torch.equal(weights[k], v) for k, v in _weights(fp32).items())
    assert _ckpt(bf16)["state"]["optimizer"]["state"][0]["step"].item() == 5


@pytest.mark.parametrize("solver_name", ["my_solver", "my_loss_solver"])
def test_a_solver_built_not_training_validates_and_evaluates_alike_and_cannot_train(
    make_solver, solver_name
):
    from audioflow.solvers import base

    chosen = (f"solver={solver_name}", "optim.epochs=1", "optim.ema.use=true")
    trained = make_solver(*chosen)
    trained.run_stage("train", 1)
    with base.not_training():
        solver = make_solver(*chosen)
    assert solver.trains is False and make_solver(*chosen).trains is True
    # no OptimSchedulers and no optimizer state loaded: the protocol keeps its precision only
    assert solver.optim_sches is None and "protocol" not in solver.stateful.stateful
    valid = solver.run_stage("valid", 1)
    evaluated = solver.run_stage("evaluate", 1)
    with pytest.raises(RuntimeError, match="not_training"):
        solver.run_stage("train", 1)
    with pytest.raises(RuntimeError, match="not_training"):
        solver.run()
    # the same stages on a solver built to train give the same metrics
    again = make_solver(*chosen)
    assert again.run_stage("valid", 1) == valid
    assert again.run_stage("evaluate", 1) == evaluated
