"""The config values the train loop reads at every update, read once when a solver starts.

A config lookup costs tens of microseconds, a visible share of a small model's update, so
the loop reads plain attributes of :class:`LoopSettings` instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from omegaconf import OmegaConf


def select(cfg, key: str, default=None):
    """The value at dotted ``key`` of ``cfg``; ``default`` when it is missing or null."""
    value = OmegaConf.select(cfg, key, default=default)
    return default if value is None else value


def torch_threads(cfg) -> int:
    """Intra-op threads of a solver process: ``num_threads``, or when it is null the
    launcher's share (``OMP_NUM_THREADS``, which the local and Kubernetes launchers set from
    a rule's ``threads``), else 1.

    Read from the environment by default so that one place, the workflow's
    ``resources.<stage>.threads``, sets both the cores a job reserves and the cores it uses.
    """
    value = select(cfg, "num_threads")
    if value is None:
        value = os.environ.get("OMP_NUM_THREADS") or 1
    return max(1, int(value))


@dataclass(frozen=True)
class LoopSettings:
    """What the train loop reads at every update (see the module docstring)."""

    epochs: int
    updates_per_epoch: int
    accum_grad: int
    seed: int
    batch_size: int
    log_updates: int
    save_every_updates: int
    ema_every: int
    max_nonfinite: int

    @classmethod
    def from_config(cls, cfg) -> LoopSettings:
        """Read the settings from an XP's composed config (defaults for the optional keys)."""
        return cls(
            epochs=int(cfg.optim.epochs),
            updates_per_epoch=int(cfg.optim.updates_per_epoch),
            accum_grad=int(cfg.optim.accum_grad),
            seed=int(cfg.seed),
            batch_size=int(select(cfg, "dataset.batch_size", 0)),
            log_updates=int(select(cfg, "logging.log_updates", 10)),
            save_every_updates=int(select(cfg, "checkpoint.save_every_updates", 0)),
            ema_every=max(1, int(select(cfg, "optim.ema.updates", 1))),
            max_nonfinite=int(select(cfg, "optim.max_nonfinite", 10)),
        )
