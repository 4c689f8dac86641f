"""Resume: the state round-trips through a checkpoint file, LRs follow the current config."""

from __future__ import annotations

import pytest
import torch

from audioflow.optim import OptimConfigError

from .helpers import EncDec, build, entry

NOAM = entry("noam.NoamLr", optim_type="Adam", optim_conf={"lr": 1e-2}, warmup_steps=10)


def fresh(precision="fp32", ft_factor=1.0, cfg=None):
    torch.manual_seed(0)
    model = EncDec()
    group = build(
        cfg or {"main": NOAM}, model, accum_grad=2, precision=precision, ft_factor=ft_factor
    )
    return model, group


def train(model, group, first: int, last: int) -> None:
    for step_num in range(first, last + 1):
        gen = torch.Generator().manual_seed(step_num)
        x, y = torch.randn(4, 4, generator=gen), torch.randn(4, 1, generator=gen)
        with group.accumulate(model, step_num), group.autocast():
            loss = (model(x).float() - y).pow(2).mean()
        group.step({"loss": loss}, step_num)


def checkpoint(tmp_path, model, group):
    path = tmp_path / "ckpt.th"
    torch.save({"model": model.state_dict(), "optim": group.state_dict()}, path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_continues_the_same_run(tmp_path, precision):
    model, group = fresh(precision)
    train(model, group, 1, 6)
    state = checkpoint(tmp_path, model, group)
    train(model, group, 7, 12)

    resumed_model, resumed = fresh(precision)
    resumed_model.load_state_dict(state["model"])
    resumed.load_state_dict(state["optim"])
    assert resumed.real_step == 3
    train(resumed_model, resumed, 7, 12)

    assert resumed.real_step == group.real_step == 6
    assert resumed.get_lrs() == pytest.approx(group.get_lrs())
    if precision == "fp16":
        assert resumed.scaler.get_scale() == group.scaler.get_scale()
    for p, q in zip(resumed_model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_changed_ft_factor_takes_effect_and_warmup_does_not_restart(tmp_path):
    model, group = fresh()
    train(model, group, 1, 8)  # 4 updates of a 10-update warmup
    state = checkpoint(tmp_path, model, group)

    tuned_model, tuned = fresh(ft_factor=0.1)
    tuned_model.load_state_dict(state["model"])
    tuned.load_state_dict(state["optim"])
    sche = tuned["main"]
    assert sche.real_step == 4
    assert sche.get_lr() == pytest.approx(0.1 * sche.update_lr(4))
    assert sche.get_lr() == pytest.approx(0.1 * 1e-2 * 4 / 10)
    train(tuned_model, tuned, 9, 10)
    assert sche.real_step == 5
    assert sche.get_lr() == pytest.approx(0.1 * 1e-2 * 5 / 10)


def test_loading_other_optim_sche_names_is_refused(tmp_path):
    model, group = fresh()
    other_model, other = fresh(cfg={"other": NOAM})
    with pytest.raises(OptimConfigError, match=r"\['main'\].*\['other'\]"):
        other.load_state_dict(group.state_dict())


def test_standalone_optim_scheduler_step_and_state():
    """The SpeeChain-style single OptimScheduler, driven without a group."""
    model, group = fresh()
    sche = group["main"]
    for step_num in range(1, 5):
        loss = model(torch.ones(2, 4)).pow(2).mean()
        outcome = sche.step({"loss": loss}, step_num)
        assert outcome == (None if step_num % 2 else "updated")
    assert sche.real_step == 2
    state = sche.state_dict()
    _, other = fresh()
    other["main"].load_state_dict(state)
    assert other["main"].real_step == 2
    assert other["main"].get_lr() == pytest.approx(sche.get_lr())


def test_optimizer_state_of_another_model_is_refused():
    _, group = fresh()
    state = group.state_dict()
    other_model, other = fresh(
        cfg={"main": NOAM | {"conf": NOAM["conf"] | {"updated_modules": ["decoder"]}}}
    )
    with pytest.raises(OptimConfigError, match="saved optimizer state does not fit"):
        other.load_state_dict(state)
