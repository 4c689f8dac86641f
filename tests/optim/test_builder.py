"""Builders: config in, OptimSchedulers or an optimizer out; every mistake one clear line."""

from __future__ import annotations

import textwrap

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from audioflow.optim import BUILTIN_TYPES, OptimConfigError, build_optimizer
from audioflow.optim.noam import NoamLr

from .helpers import build, entry


def error(cfg, model, **kwargs) -> str:
    with pytest.raises(OptimConfigError) as info:
        build(cfg, model, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, ValueError) and info.value.exit_code == 2
    return message


def test_issue_example_config_builds(model):
    cfg = OmegaConf.create(
        {
            "main": {
                "type": "noam.NoamLr",
                "conf": {
                    "optim_type": "AdamW",
                    "optim_conf": {"lr": 1.0e-3, "betas": [0.9, 0.98], "weight_decay": 0.01},
                    "optim_loss": "loss",
                    "updated_modules": ["encoder", "decoder"],
                    "step_per_update": 1,
                    "grad_clip": 1.0,
                    "grad_norm_type": 2.0,
                    "d_model": 256,
                    "warmup_steps": 4000,
                },
            }
        }
    )
    group = build(cfg, model)
    assert group.names == ["main"]
    assert isinstance(group["main"], NoamLr)
    assert isinstance(group["main"].optimizer, torch.optim.AdamW)


def test_unknown_type_lists_builtins(model):
    message = error({"m": entry("noam.Noam")}, model)
    assert "optim_sches.m.type='noam.Noam'" in message
    assert all(t in message for t in BUILTIN_TYPES)


def test_full_dotted_path_to_a_user_class(model, tmp_path, monkeypatch):
    (tmp_path / "my_sches.py").write_text(
        textwrap.dedent(
            """
            from audioflow.optim.scheduler import OptimScheduler

            class HalfLr(OptimScheduler):
                def update_lr(self, real_step):
                    return self.require_lr() / 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = build({"m": entry("my_sches.HalfLr")}, model)
    assert group.get_lrs() == {"m": pytest.approx(0.05)}
    assert "not an OptimScheduler" in error({"m": entry("torch.nn.Linear")}, model)


def test_unknown_optim_type_lists_torch_optimizers(model):
    message = error({"m": entry(optim_type="Adamw")}, model)
    assert "optim_sches.m.conf.optim_type='Adamw'" in message and "AdamW" in message


def test_unknown_scheduler_key_lists_valid_keys(model):
    message = error({"m": entry("noam.NoamLr", warmup=10, optim_conf={"lr": 1.0})}, model)
    assert "optim_sches.m.conf.warmup" in message and "d_model, warmup_steps, factor" in message


def test_optimizer_rejecting_optim_conf(model):
    assert "SGD rejects it" in error({"m": entry(optim_conf={"lr": 0.1, "betas": [0.9]})}, model)


def test_unknown_module_lists_submodules(model):
    message = error({"m": entry(updated_modules=["encodr"])}, model)
    assert "'encodr'" in message and "encoder, decoder" in message


def test_two_optim_sches_claiming_one_module(model):
    cfg = {"a": entry(updated_modules=["encoder"]), "b": entry(updated_modules=["encoder"])}
    assert "both claim module 'encoder'" in error(cfg, model)
    cfg = {"a": entry(), "b": entry(updated_modules=["decoder"])}
    assert "optim_sches.a has no updated_modules" in error(cfg, model)


def test_tied_parameters_across_modules_are_refused():
    model = nn.Module()
    model.a, model.b = nn.Linear(2, 2), nn.Linear(2, 2)
    model.b.weight = model.a.weight
    cfg = {"a": entry(updated_modules=["a"]), "b": entry(updated_modules=["b"])}
    assert "update the same parameters" in error(cfg, model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "fp8"}, "optim.precision='fp8' is unknown; choose one of: fp32, bf16, fp16"),
        ({"accum_grad": 0}, "accum_grad=0"),
        ({"ft_factor": 0}, "optim.ft_factor=0"),
    ],
)
def test_bad_solver_level_values(model, kwargs, match):
    assert match in error({"m": entry()}, model, **kwargs)


def test_bad_entries(model):
    assert "optim_type is required" in error({"m": {"type": "constant.ConstantLr"}}, model)
    assert "optim_sches.m.kind is unknown" in error({"m": entry() | {"kind": 1}}, model)
    assert "optim_sches must map names" in error({}, model)


def test_build_optimizer_audiocraft_style(model):
    cfg = OmegaConf.create(
        {"optimizer": "adamw", "lr": 3e-4, "adam": {"betas": [0.5, 0.9], "weight_decay": 0.1}}
    )
    opt = build_optimizer(model.parameters(), cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.5, 0.9) and opt.defaults["weight_decay"] == 0.1
    assert isinstance(build_optimizer(model, {"optimizer": "adam", "lr": 1e-3}), torch.optim.Adam)
    sgd = build_optimizer(model, {"optimizer": "sgd", "lr": 0.1, "sgd": {"momentum": 0.9}})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9


def test_build_optimizer_unknown_name(model):
    with pytest.raises(
        OptimConfigError,
        match=r"^optim.optimizer='lion' is unknown; choose one of: adam, adamw, sgd$",
    ):
        build_optimizer(model.parameters(), {"optimizer": "lion", "lr": 1e-3})
