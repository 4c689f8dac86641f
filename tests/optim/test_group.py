"""OptimSchedulerGroup on one process: accumulation, several optimizers, skips, counting."""

from __future__ import annotations

import pytest
import torch

from audioflow.optim import OptimConfigError

from .helpers import EncDec, build, entry


def batch(seed: int, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=gen), torch.randn(n, 1, generator=gen)


def run(group, model, steps: int, seed: int = 0, loss_fn=None) -> list[dict]:
    outs = []
    for step_num in range(1, steps + 1):
        x, y = batch(seed + step_num)
        with group.accumulate(model, step_num):
            with group.autocast():
                pred = model(x)
            loss = (pred.float() - y).pow(2).mean()
            losses = loss_fn(loss) if loss_fn else {"loss": loss}
            outs.append(group.step(losses, step_num))
    return outs


def test_accum_grad_maps_micro_steps_to_real_steps(model):
    cfg = {"main": entry("noam.NoamLr", optim_conf={"lr": 1.0}, warmup_steps=10)}
    group = build(cfg, model, accum_grad=3)
    outs = run(group, model, 9)
    assert [o["updated"] for o in outs] == [False, False, True] * 3
    assert group.real_step == group["main"].real_step == 3
    # The LR of real step 3 (9 micro-steps / accum 3) of a 10-step linear warmup.
    assert group.get_lrs()["main"] == pytest.approx(3 / 10)


def test_loss_is_not_modified_in_place(model):
    group = build({"main": entry()}, model, accum_grad=4)
    x, y = batch(1)
    loss = (model(x) - y).pow(2).mean()
    value, version = loss.item(), loss._version
    with group.accumulate(model, 1):
        group.step({"loss": loss}, 1)
    assert loss.item() == value
    assert loss._version == version


def test_accumulating_equals_one_big_batch(model):
    reference = EncDec()
    reference.load_state_dict(model.state_dict())
    group = build({"main": entry()}, model, accum_grad=4)
    xs, ys = zip(*(batch(s) for s in range(1, 5)), strict=True)
    run(group, model, 4)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    (reference(torch.cat(xs)) - torch.cat(ys)).pow(2).mean().backward()
    opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_each_optim_sche_gets_only_its_own_loss_gradient(model):
    """A loss reaching another OptimScheduler's module must not move that module."""
    cfg = {
        "enc": entry(updated_modules=["encoder"], optim_loss="enc_loss"),
        "dec": entry(updated_modules=["decoder"], optim_loss="dec_loss"),
    }
    group = build(cfg, model)
    decoder_before = [p.detach().clone() for p in model.decoder.parameters()]
    x, y = batch(3)
    h = torch.tanh(model.encoder(x))
    out = model.decoder(h)  # shared sub-graph: both losses go through encoder and decoder
    losses = {"enc_loss": (out - y).pow(2).mean(), "dec_loss": out.abs().mean() * 0.0}
    result = group.step(losses, 1)
    assert result["updated"]
    # dec_loss has zero gradient: the decoder must not have moved despite enc_loss.
    for p, q in zip(model.decoder.parameters(), decoder_before, strict=True):
        torch.testing.assert_close(p, q)
    assert group["enc"].real_step == group["dec"].real_step == 1


def test_unknown_loss_name_lists_the_valid_ones(model):
    group = build({"main": entry(optim_loss="total")}, model)
    x, y = batch(1)
    with pytest.raises(OptimConfigError, match="valid loss names: loss, aux"):
        group.step({"loss": model(x).mean(), "aux": model(y.repeat(1, 4)).mean()}, 1)


def test_step_per_update_counts_own_updates(model):
    cfg = {
        "enc": entry(updated_modules=["encoder"], step_per_update=1),
        "dec": entry(
            "noam.NoamLr",
            updated_modules=["decoder"],
            step_per_update=2,
            optim_conf={"lr": 1.0},
            warmup_steps=100,
        ),
    }
    group = build(cfg, model, accum_grad=2)
    run(group, model, 8)  # 4 real steps
    assert group["enc"].real_step == 4
    assert group["dec"].real_step == 2
    assert group["dec"].get_lr() == pytest.approx(2 / 100)  # its own 2nd update


def test_nonfinite_gradients_skip_the_update_and_freeze_the_clock(model):
    cfg = {"main": entry("noam.NoamLr", optim_conf={"lr": 1.0}, warmup_steps=10)}
    group = build(cfg, model)
    run(group, model, 2)
    params = [p.detach().clone() for p in model.parameters()]
    lr = group.get_lrs()["main"]
    outs = run(group, model, 1, loss_fn=lambda loss: {"loss": loss * float("inf")})
    assert outs[0] == {"updated": False, "skipped_nonfinite": True, "lr": {"main": lr}}
    assert group.skipped_updates == 1 and group["main"].skipped_updates == 1
    assert group.real_step == group["main"].real_step == 2
    for p, q in zip(model.parameters(), params, strict=True):
        torch.testing.assert_close(p, q)
    assert all(p.grad is None for p in model.parameters())  # nothing leaks into the next step
    run(group, model, 1)
    assert group["main"].real_step == 3
    assert group.get_lrs()["main"] == pytest.approx(0.3)


def test_optim_sche_without_loss_this_step_sits_out(model):
    cfg = {
        "enc": entry(updated_modules=["encoder"]),
        "dec": entry(updated_modules=["decoder"], optim_loss="d_loss"),
    }
    group = build(cfg, model, precision="fp16")  # no "No inf checks were recorded"
    outs = run(group, model, 3, loss_fn=lambda loss: {"loss": loss, "d_loss": None})
    assert group["dec"].real_step == 0
    assert group["enc"].real_step + group["enc"].skipped_updates == 3
    assert outs[-1]["lr"] == {"enc": 0.1, "dec": 0.1}


def test_solver_level_key_in_conf_is_refused(model):
    with pytest.raises(OptimConfigError, match="optim_sches.main.conf.accum_grad"):
        build({"main": entry(accum_grad=2)}, model)


def test_a_none_loss_keeps_the_gradients_the_window_already_has(model):
    reference = EncDec()
    reference.load_state_dict(model.state_dict())
    group = build({"main": entry()}, model, accum_grad=2)
    x, y = batch(1)
    with group.accumulate(model, 1):
        group.step({"loss": (model(x) - y).pow(2).mean()}, 1)
    with group.accumulate(model, 2):
        out = group.step({"loss": None}, 2)  # no loss on the window's last micro-step
    assert out["updated"] and group["main"].real_step == 1
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    ((reference(x) - y).pow(2).mean() / 2).backward()  # the window's mean: half of step 1
    opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_the_window_reports_each_optimizers_grad_norm_before_clipping(model):
    cfg = {
        "enc": entry(updated_modules=["encoder"], grad_clip=1e-3),
        "dec": entry(updated_modules=["decoder"]),
    }
    group = build(cfg, model)
    x, y = batch(2)
    loss = (model(x) - y).pow(2).mean()
    expected = {}
    for name, module in (("enc", model.encoder), ("dec", model.decoder)):
        grads = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True)
        expected[name] = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    group.step({"loss": loss}, 1)
    norms = group.last_window.grad_norms
    assert set(norms) == {"enc", "dec"}
    for name, value in expected.items():
        torch.testing.assert_close(norms[name], value)  # enc's is the norm before clipping
    assert group.last_window.metrics()["lr/enc"] == 0.1
