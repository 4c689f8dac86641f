"""Each schedule against its formula, at the steps the issue names."""

from __future__ import annotations

import math

import pytest

from audioflow.optim import OptimConfigError

from .helpers import build, entry

W = 4000


def noam(model, **conf):
    return build({"main": entry("noam.NoamLr", **conf)}, model)["main"]


def test_noam_with_d_model_follows_vaswani(model):
    sche = noam(model, optim_type="Adam", optim_conf={}, d_model=512, warmup_steps=W)
    for step in (1, 4000, 16000):
        expected = 512**-0.5 * min(step**-0.5, step * W**-1.5)
        assert sche.update_lr(step) == pytest.approx(expected, rel=1e-12)
    assert sche.update_lr(1) / sche.update_lr(W) == pytest.approx(1 / W)
    assert sche.update_lr(4 * W) / sche.update_lr(W) == pytest.approx(0.5)


def test_noam_with_d_model_uses_lr_as_factor(model):
    sche = noam(model, optim_conf={"lr": 2.0}, d_model=256, warmup_steps=W)
    assert sche.update_lr(W) == pytest.approx(2.0 * 256**-0.5 * W**-0.5)


def test_noam_factor_and_lr_together_is_refused(model):
    with pytest.raises(OptimConfigError, match="factor and optim_conf.lr"):
        noam(model, optim_conf={"lr": 1e-3}, d_model=256, factor=2.0)


def test_noam_without_d_model_peaks_at_lr(model):
    sche = noam(model, optim_conf={"lr": 1e-3}, warmup_steps=W)
    assert sche.update_lr(W) == pytest.approx(1e-3)
    assert sche.update_lr(1) == pytest.approx(1e-3 / W)
    assert sche.update_lr(16000) == pytest.approx(1e-3 * 0.5)
    assert sche.update_lr(1) / sche.update_lr(W) == pytest.approx(1 / W)
    assert sche.update_lr(4 * W) / sche.update_lr(W) == pytest.approx(0.5)
    # Step 0 would be a division by zero in the formula; it is clamped to the first update.
    assert math.isfinite(sche.update_lr(0))


def test_noam_without_lr_or_d_model_is_refused(model):
    with pytest.raises(OptimConfigError, match="optim_conf.lr is missing"):
        noam(model, optim_conf={}, warmup_steps=10)


def test_first_lr_is_set_before_the_first_update(model):
    sche = noam(model, optim_conf={"lr": 1e-3}, warmup_steps=W)
    assert sche.get_lr() == pytest.approx(1e-3 / W)


def test_ft_factor_scales_every_schedule(model):
    cfg = {"main": entry("noam.NoamLr", optim_conf={"lr": 1e-3}, warmup_steps=W)}
    assert build(cfg, model, ft_factor=0.1)["main"].get_lr() == pytest.approx(1e-4 / W)


def test_warmup_cosine(model):
    conf = {"optim_conf": {"lr": 1.0}, "warmup_steps": 10, "total_steps": 110, "min_lr_ratio": 0.1}
    sche = build({"m": entry("warmup.WarmupCosineLr", **conf)}, model)["m"]
    assert sche.update_lr(1) == pytest.approx(0.1)
    assert sche.update_lr(10) == pytest.approx(1.0)
    assert sche.update_lr(60) == pytest.approx(0.1 + 0.5 * 0.9)  # half way down the cosine
    assert sche.update_lr(110) == pytest.approx(0.1)
    assert sche.update_lr(10_000) == pytest.approx(0.1)


def test_exponent_decay(model):
    conf = {"optim_conf": {"lr": 1.0}, "decay_factor": 0.5, "decay_steps": 10, "warmup_steps": 0}
    sche = build({"m": entry("exp.ExponentDecayLr", **conf)}, model)["m"]
    assert [sche.update_lr(s) for s in (1, 10, 11, 21)] == pytest.approx([1, 1, 0.5, 0.25])


def test_inverse_sqrt(model):
    conf = {"optim_conf": {"lr": 1.0}, "warmup_steps": W}
    sche = build({"m": entry("inverse_sqrt.InverseSqrtLr", **conf)}, model)["m"]
    assert sche.update_lr(1) == pytest.approx(1 / W)
    assert sche.update_lr(W) == pytest.approx(1.0)
    assert sche.update_lr(16000) == pytest.approx(0.5)


def test_constant(model):
    sche = build({"m": entry(optim_conf={"lr": 0.3})}, model)["m"]
    assert sche.update_lr(1) == sche.update_lr(10**6) == pytest.approx(0.3)
    assert "ConstantLr(name='m'" in repr(sche)


@pytest.mark.parametrize(
    "type_",
    [
        "constant.ConstantLr",
        "warmup.WarmupCosineLr",
        "exp.ExponentDecayLr",
        "inverse_sqrt.InverseSqrtLr",
    ],
)
def test_schedules_need_lr(model, type_):
    conf = {"total_steps": 10} if type_.startswith("warmup") else {}
    with pytest.raises(OptimConfigError, match="optim_conf.lr is missing"):
        build({"m": entry(type_, optim_conf={}, **conf)}, model)
