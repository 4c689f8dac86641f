"""Small models and config builders shared by the optim tests."""

from __future__ import annotations

import torch
from torch import nn

from audioflow.optim import build_optim_sches


class EncDec(nn.Module):
    """Two first-level submodules, as OptimSchedulers see a real model."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.encoder = nn.Linear(dim, dim)
        self.decoder = nn.Linear(dim, 1)

    def forward(self, x):  # x: (B, dim) -> (B, 1)
        return self.decoder(torch.tanh(self.encoder(x)))


def entry(type_: str = "constant.ConstantLr", **conf) -> dict:
    """One optim_sches entry; conf defaults to SGD(lr=0.1) without clipping."""
    base = {"optim_type": "SGD", "optim_conf": {"lr": 0.1}, "grad_clip": 0}
    return {"type": type_, "conf": base | conf}


def build(cfg: dict, model: nn.Module, **kwargs):
    opts = {"distributed": False, "accum_grad": 1, "precision": "fp32", "ft_factor": 1.0}
    return build_optim_sches(cfg, model, **(opts | kwargs))
