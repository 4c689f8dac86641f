"""Linear warmup followed by a cosine decay (the GPT / nanoGPT schedule)."""

from __future__ import annotations

import math

from .errors import OptimConfigError
from .scheduler import OptimScheduler


class WarmupCosineLr(OptimScheduler):
    """Linear warmup to ``optim_conf.lr``, cosine decay to ``min_lr_ratio * lr``.

    Phases (step counts this OptimScheduler's updates from 1):

    - ``step <= warmup_steps``: ``lr * step / warmup_steps`` (never 0 at the first update);
    - ``warmup_steps < step < total_steps``: cosine from ``lr`` down to the floor;
    - ``step >= total_steps``: the floor ``min_lr_ratio * lr``.

    Keys:
        total_steps: the update at which the decay reaches its floor.
        warmup_steps: updates of linear warmup (0 = none).
        min_lr_ratio: the floor as a fraction of ``optim_conf.lr``.
    """

    def sche_init(self, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0):
        if not isinstance(total_steps, int) or total_steps < 1:
            raise OptimConfigError(f"{self._where('total_steps')}={total_steps!r}: must be >= 1")
        if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
            raise OptimConfigError(
                f"{self._where('warmup_steps')}={warmup_steps!r}: must be in [0, total_steps)"
            )
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise OptimConfigError(
                f"{self._where('min_lr_ratio')}={min_lr_ratio}: must be in [0, 1]"
            )
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.min_lr_ratio = float(min_lr_ratio)
        self.require_lr()

    def update_lr(self, real_step: int) -> float:
        lr, step = self.require_lr(), max(int(real_step), 1)
        floor = self.min_lr_ratio * lr
        if step <= self.warmup_steps:
            return lr * step / self.warmup_steps
        if step >= self.total_steps:
            return floor
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - floor)

    def extra_repr_fn(self) -> str:
        return (
            f"warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, "
            f"min_lr_ratio={self.min_lr_ratio}"
        )
