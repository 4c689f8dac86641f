"""A constant learning rate (``optim_conf.lr`` times ``ft_factor``)."""

from __future__ import annotations

from .scheduler import OptimScheduler


class ConstantLr(OptimScheduler):
    """``optim_conf.lr`` at every update; no scheduler keys."""

    def update_lr(self, real_step: int) -> float:
        return self.require_lr()
