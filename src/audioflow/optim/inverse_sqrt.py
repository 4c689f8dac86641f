"""fairseq's inverse square-root schedule: linear warmup, then lr * sqrt(warmup / step)."""

from __future__ import annotations

from .errors import OptimConfigError
from .scheduler import OptimScheduler


class InverseSqrtLr(OptimScheduler):
    """Warmup linearly from ``warmup_init_lr`` to ``optim_conf.lr``, then decay as 1/sqrt(step).

    - ``step <= warmup_steps``: ``init + (lr - init) * step / warmup_steps``;
    - afterwards: ``lr * sqrt(warmup_steps / step)``.

    Keys:
        warmup_steps: updates of warmup (>= 1).
        warmup_init_lr: the LR the warmup starts from (at step 0).
    """

    def sche_init(self, warmup_steps: int = 4000, warmup_init_lr: float = 0.0):
        if not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise OptimConfigError(f"{self._where('warmup_steps')}={warmup_steps!r}: must be >= 1")
        self.warmup_steps, self.warmup_init_lr = warmup_steps, float(warmup_init_lr)
        self.require_lr()

    def update_lr(self, real_step: int) -> float:
        lr, step = self.require_lr(), max(int(real_step), 1)
        if step <= self.warmup_steps:
            return self.warmup_init_lr + (lr - self.warmup_init_lr) * step / self.warmup_steps
        return lr * (self.warmup_steps / step) ** 0.5

    def extra_repr_fn(self) -> str:
        return f"warmup_steps={self.warmup_steps}, warmup_init_lr={self.warmup_init_lr}"
