"""Exponential (staircase) decay, with an optional linear warmup."""

from __future__ import annotations

from .errors import OptimConfigError
from .scheduler import OptimScheduler


class ExponentDecayLr(OptimScheduler):
    """``lr * decay_factor ** ((step - warmup_steps - 1) // decay_steps)`` after warmup.

    The first update after warmup uses ``optim_conf.lr`` exactly; the LR is multiplied by
    ``decay_factor`` every ``decay_steps`` updates and never drops below ``min_lr``. During
    warmup it rises linearly: ``lr * step / warmup_steps``.

    Keys:
        decay_factor: multiplier per decay period, in (0, 1].
        decay_steps: updates per decay period.
        warmup_steps: updates of linear warmup (0 = none).
        min_lr: floor of the LR.
    """

    def sche_init(
        self,
        decay_factor: float = 0.999,
        decay_steps: int = 1,
        warmup_steps: int = 0,
        min_lr: float = 0.0,
    ):
        if not 0.0 < decay_factor <= 1.0:
            raise OptimConfigError(
                f"{self._where('decay_factor')}={decay_factor}: must be in (0, 1]"
            )
        if not isinstance(decay_steps, int) or decay_steps < 1:
            raise OptimConfigError(f"{self._where('decay_steps')}={decay_steps!r}: must be >= 1")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise OptimConfigError(f"{self._where('warmup_steps')}={warmup_steps!r}: must be >= 0")
        self.decay_factor, self.decay_steps = float(decay_factor), decay_steps
        self.warmup_steps, self.min_lr = warmup_steps, float(min_lr)
        self.require_lr()

    def update_lr(self, real_step: int) -> float:
        lr, step = self.require_lr(), max(int(real_step), 1)
        if step <= self.warmup_steps:
            return lr * step / self.warmup_steps
        periods = (step - self.warmup_steps - 1) // self.decay_steps
        return max(lr * self.decay_factor**periods, self.min_lr)

    def extra_repr_fn(self) -> str:
        return (
            f"decay_factor={self.decay_factor}, decay_steps={self.decay_steps}, "
            f"warmup_steps={self.warmup_steps}, min_lr={self.min_lr}"
        )
