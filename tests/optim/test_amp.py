"""Mixed precision: bf16 autocast, fp16 with the group's GradScaler (CPU here, GPU when present)."""

from __future__ import annotations

import copy

import pytest
import torch

from .helpers import EncDec, build, entry

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ],
    ),
]


def data(seed: int, device: str):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=gen).to(device), torch.randn(8, 1, generator=gen).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_autocasts_the_forward_and_updates_without_scaler(device):
    torch.manual_seed(0)
    model = EncDec().to(device)
    group = build({"main": entry()}, model, precision="bf16")
    assert group.scaler is None
    before = model.encoder.weight.detach().clone()
    x, y = data(0, device)
    with group.accumulate(model, 1):
        with group.autocast():
            pred = model(x)
        out = group.step({"loss": (pred.float() - y).pow(2).mean()}, 1)
    assert pred.dtype == torch.bfloat16
    assert out["updated"] and not torch.equal(model.encoder.weight, before)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_unscales_before_clipping(device):
    """Clip threshold far above the true gradient norm but far below the scaled one."""
    torch.manual_seed(0)
    model = EncDec().to(device)
    cfg = {"main": entry(optim_conf={"lr": 1.0}, grad_clip=1000.0)}
    group = build(cfg, model, precision="fp16")
    assert group.scaler is not None and group.scaler.get_scale() > 1000
    for step_num in range(1, 20):  # the scale may first back off from an overflow
        reference = copy.deepcopy(model)
        x, y = data(step_num, device)
        with group.autocast():
            pred = model(x)
            ref_pred = reference(x)
        (ref_pred.float() - y).pow(2).mean().backward()
        out = group.step({"loss": (pred.float() - y).pow(2).mean()}, step_num)
        if out["updated"]:
            break
    assert out["updated"]
    expected = reference.encoder.weight - reference.encoder.weight.grad
    torch.testing.assert_close(model.encoder.weight, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_two_optim_sches_one_scaler_update_per_step(device):
    torch.manual_seed(0)
    model = EncDec().to(device)
    cfg = {
        "enc": entry(updated_modules=["encoder"], grad_clip=1.0),
        # This loss never reaches the decoder: its optimizer must be skipped, not unscaled.
        "dec": entry(updated_modules=["decoder"], optim_loss="enc_only", grad_clip=1.0),
    }
    group = build(cfg, model, precision="fp16", accum_grad=2)
    updates = []
    real_update = group.scaler.update
    group.scaler.update = lambda *a, **k: (updates.append(1), real_update(*a, **k))[1]
    for step_num in range(1, 7):
        x, y = data(step_num, device)
        with group.accumulate(model, step_num):
            with group.autocast():
                h = model.encoder(x)
                pred = model.decoder(torch.tanh(h))
            losses = {"loss": (pred.float() - y).pow(2).mean(), "enc_only": h.float().mean()}
            group.step(losses, step_num)
    assert len(updates) == 3  # once per window of 2 micro-steps
    assert group["dec"].real_step == 0 and group["dec"].skipped_updates == 0
    assert group["enc"].real_step + group["enc"].skipped_updates == 3


def test_legacy_use_amp_means_fp16():
    from audioflow.optim import build_optim_sches

    group = build_optim_sches(
        {"main": entry()}, EncDec(), distributed=False, accum_grad=1, ft_factor=1.0, use_amp=True
    )
    assert group.precision == "fp16" and group.scaler is not None
