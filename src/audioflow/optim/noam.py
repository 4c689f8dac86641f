"""Noam schedule: linear warmup, then decay with the inverse square root of the step."""

from __future__ import annotations

from .errors import OptimConfigError
from .scheduler import OptimScheduler


class NoamLr(OptimScheduler):
    """The Transformer schedule, in either of its two usual forms.

    With ``d_model`` (Vaswani et al. 2017, section 5.3)::

        lr(step) = factor * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    where ``factor`` is ``optim_conf.lr`` (ESPnet2's NoamLR convention; 1.0 reproduces the
    paper) or the ``factor`` key, never both. Without ``d_model`` (ESPnet's WarmupLR)::

        lr(step) = optim_conf.lr * warmup_steps**0.5 * min(step**-0.5, step * warmup_steps**-1.5)

    which peaks at exactly ``optim_conf.lr`` when ``step == warmup_steps``. Steps count
    this OptimScheduler's updates from 1, so there is never a division by zero.

    Keys:
        d_model: model width, or None for the peak-LR form.
        warmup_steps: updates of linear warmup (>= 1).
        factor: the Vaswani factor when ``optim_conf.lr`` is not given (default 1.0).
    """

    def sche_init(self, d_model: int | None = None, warmup_steps: int = 4000, factor=None):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise OptimConfigError(f"{self._where('warmup_steps')}={warmup_steps!r}: must be >= 1")
        self.warmup_steps = warmup_steps
        self.d_model = d_model
        if d_model is None:
            if factor is not None:
                raise OptimConfigError(
                    f"{self._where('factor')}: only used with d_model; without d_model the "
                    "peak LR is optim_conf.lr"
                )
            self.peak_scale = self.require_lr() * warmup_steps**0.5
            return
        if not isinstance(d_model, int) or d_model < 1:
            raise OptimConfigError(f"{self._where('d_model')}={d_model!r}: must be an integer >= 1")
        if factor is not None and self.base_lr is not None:
            raise OptimConfigError(
                f"{self._where('factor')} and optim_conf.lr are both set: with d_model the LR "
                "factor is optim_conf.lr; remove one of them"
            )
        self.factor = float(factor if factor is not None else self.base_lr or 1.0)
        self.peak_scale = self.factor * d_model**-0.5

    def update_lr(self, real_step: int) -> float:
        step = max(int(real_step), 1)
        # Rising phase step * w^-1.5 meets decaying phase step^-0.5 at step == w.
        return self.peak_scale * min(step**-0.5, step * self.warmup_steps**-1.5)

    def extra_repr_fn(self) -> str:
        peak = self.ft_factor * self.update_lr(self.warmup_steps)
        return f"d_model={self.d_model}, warmup_steps={self.warmup_steps}, peak_lr={peak:.3g}"
