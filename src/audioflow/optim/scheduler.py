"""OptimScheduler: one torch optimizer plus its learning-rate schedule (SpeeChain's design).

An OptimScheduler owns the parameters of some first-level submodules of the model, the
optimizer over them and a schedule that turns its own update count (``real_step``, from 1)
into a learning rate. Subclasses only write ``sche_init`` (their config keys) and
``update_lr`` (the schedule as a pure function of the step); the base class applies
``ft_factor``, clipping, AMP unscaling, the non-finite skip and the state round trip.

Several OptimSchedulers are driven together by :class:`audioflow.optim.protocol.OptimProtocol`,
which orders the backward passes and the DDP synchronisation; ``step`` here is the
single-optimizer convenience.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping

import torch
from torch import nn

from .errors import OptimConfigError
from .update import NO_GRAD, NONFINITE, UPDATED, apply_update, check_ft_factor


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside a DistributedDataParallel / DataParallel wrapper."""
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def optimizer_names() -> list[str]:
    """Every ``torch.optim`` optimizer class name, for error messages."""
    return sorted(
        name
        for name, obj in vars(torch.optim).items()
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj.__name__ == name
        if name != "Optimizer"
    )


class OptimScheduler:
    """Base class: an optimizer over some submodules and its learning-rate schedule.

    Args:
        optim_type: a ``torch.optim`` class name, e.g. ``AdamW``.
        optim_conf: keyword arguments of that class; ``lr`` is the schedule's base LR.
        model: the model (possibly DDP-wrapped; submodules are looked up on the inner module).
        distributed: whether the model runs under DDP (recorded for ``__repr__``).
        optim_loss: name of the loss (a key of the solver's loss dict) this one back-propagates.
        updated_modules: first-level submodule names it updates (dotted paths work too);
            None means every trainable parameter of the model.
        step_per_update: update once every N real steps (accumulation windows); the schedule
            counts this OptimScheduler's own updates.
        use_amp: fp16 mixed precision for the standalone ``step`` (creates its own GradScaler);
            inside a group the group's scaler is passed in instead.
        accum_grad: micro-batches per real step.
        ft_factor: multiplier applied to every scheduled LR (e.g. 0.1 to fine-tune).
        grad_clip: max gradient norm over its own parameters; 0 or None disables clipping.
        grad_norm_type: the p of the p-norm used for clipping and the non-finite check.
        name: the name under ``optim_sches`` (used in messages and logs).
        **sche_conf: scheduler-specific keys, passed to ``sche_init``.

    Raises:
        OptimConfigError: unknown optim_type, module or scheduler key, a bad value, or an
            optimizer that rejects ``optim_conf``.
    """

    def __init__(
        self,
        optim_type: str,
        optim_conf: Mapping | None = None,
        model: nn.Module | None = None,
        distributed: bool = False,
        optim_loss: str = "loss",
        updated_modules: list[str] | str | None = None,
        step_per_update: int = 1,
        use_amp: bool = False,
        accum_grad: int = 1,
        ft_factor: float = 1.0,
        grad_clip: float | None = 1.0,
        grad_norm_type: float = 2.0,
        name: str = "main",
        **sche_conf,
    ):
        self.name = name
        self.optim_type = optim_type
        self.optim_conf = dict(optim_conf or {})
        self.distributed = bool(distributed)
        self.optim_loss = str(optim_loss or "loss")
        self.step_per_update = self._positive_int("step_per_update", step_per_update)
        self.accum_grad = self._positive_int("accum_grad", accum_grad)
        self.use_amp = bool(use_amp)
        self.ft_factor = check_ft_factor(ft_factor)
        self.grad_clip = float(grad_clip or 0.0)
        self.grad_norm_type = float(grad_norm_type)
        self.base_lr = self.optim_conf.get("lr")
        if self.base_lr is not None:
            self.base_lr = float(self.base_lr)

        if model is None:
            raise OptimConfigError(f"optim_sches.{name}: an OptimScheduler needs the model")
        inner = unwrap_model(model)
        if isinstance(updated_modules, str):
            updated_modules = [updated_modules]
        self.updated_modules = list(updated_modules) if updated_modules else None
        self.params = self._collect_params(inner)

        self.optimizer = self._build_optimizer()
        self.real_step = 0  # optimizer updates done; the schedule's clock
        self.skipped_updates = 0  # updates skipped for non-finite gradients
        self._own_scaler: torch.amp.GradScaler | None = None

        self._check_sche_conf(sche_conf)
        self.sche_init(**sche_conf)
        self._set_lr(self.ft_factor * self.update_lr(1))

    # ----- to override -----------------------------------------------------------------
    def sche_init(self) -> None:
        """Read the scheduler-specific keys, declared as keyword arguments.

        Subclasses list their keys with defaults (``def sche_init(self, warmup_steps=4000)``);
        a key the signature does not name is refused at build time with the valid ones.
        """

    def update_lr(self, real_step: int) -> float:
        """The LR of update number ``real_step`` (from 1), before ``ft_factor``.

        A pure function of the step: resuming recomputes it from the saved step.
        """
        return self.require_lr()

    def extra_repr_fn(self) -> str:
        """The scheduler-specific part of ``__repr__``."""
        return ""

    # ----- helpers for subclasses ------------------------------------------------------
    def require_lr(self) -> float:
        """``optim_conf.lr``, or a clear error when the schedule needs it and it is missing."""
        if self.base_lr is None:
            raise OptimConfigError(
                f"optim_sches.{self.name}.conf.optim_conf.lr is missing: "
                f"{type(self).__name__} needs it as its base learning rate"
            )
        return self.base_lr

    # ----- construction ----------------------------------------------------------------
    def _where(self, key: str) -> str:
        return f"optim_sches.{self.name}.conf.{key}"

    def _positive_int(self, key: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise OptimConfigError(f"{self._where(key)}={value!r}: must be an integer >= 1")
        return value

    def _collect_params(self, inner: nn.Module) -> list[nn.Parameter]:
        if self.updated_modules is None:
            modules = [inner]
        else:
            children = [n for n, _ in inner.named_children()]
            modules = []
            for mod_name in self.updated_modules:
                try:
                    modules.append(inner.get_submodule(mod_name))
                except AttributeError:
                    raise OptimConfigError(
                        f"{self._where('updated_modules')}: no submodule {mod_name!r} in "
                        f"{type(inner).__name__}; choose from: {', '.join(children)}"
                    ) from None
        params, seen = [], set()
        for module in modules:
            for p in module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        if not params:
            raise OptimConfigError(
                f"{self._where('updated_modules')}={self.updated_modules}: "
                "these modules have no trainable parameters"
            )
        return params

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cls = getattr(torch.optim, str(self.optim_type), None)
        valid = optimizer_names()
        if self.optim_type not in valid or cls is None:
            raise OptimConfigError(
                f"{self._where('optim_type')}={self.optim_type!r} is not a torch.optim "
                f"optimizer; choose from: {', '.join(valid)}"
            )
        conf = dict(self.optim_conf)
        if "betas" in conf:  # YAML gives a list; some optimizers check for a tuple
            conf["betas"] = tuple(conf["betas"])
        try:
            return cls(self.params, **conf)
        except (TypeError, ValueError) as exc:
            raise OptimConfigError(
                f"{self._where('optim_conf')}={self.optim_conf}: {self.optim_type} rejects it "
                f"({str(exc).splitlines()[0]})"
            ) from None

    def _check_sche_conf(self, sche_conf: dict) -> None:
        signature = inspect.signature(self.sche_init)
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            return
        valid = [n for n, p in signature.parameters.items() if p.kind is not p.VAR_POSITIONAL]
        unknown = sorted(set(sche_conf) - set(valid))
        if unknown:
            raise OptimConfigError(
                f"{self._where(unknown[0])}: unknown key for {type(self).__name__}; "
                f"valid scheduler keys: {', '.join(valid) or '(none)'}"
            )
        missing = [
            n
            for n, p in signature.parameters.items()
            if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD and n not in sche_conf
        ]
        if missing:
            raise OptimConfigError(
                f"{self._where(missing[0])} is required by {type(self).__name__}"
            )

    # ----- the update ------------------------------------------------------------------
    def get_lr(self) -> float:
        """The learning rate currently set on the optimizer (that of the latest update)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        if not math.isfinite(lr) or lr < 0:
            raise OptimConfigError(
                f"optim_sches.{self.name}: {type(self).__name__} produced lr={lr} "
                f"at step {self.real_step + 1}; check its keys"
            )
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def has_grad(self) -> bool:
        """Whether any of its parameters holds a gradient."""
        return any(p.grad is not None for p in self.params)

    def zero_grad(self) -> None:
        """Drop its parameters' gradients (set to None)."""
        self.optimizer.zero_grad(set_to_none=True)

    def apply_update(
        self, scaler: torch.amp.GradScaler | None = None
    ) -> tuple[str, torch.Tensor | None]:
        """End of a window: unscale, clip, check, step, zero the gradients (update.py).

        Args:
            scaler: the fp16 GradScaler shared by the protocol, or None.

        Returns:
            ``(outcome, grad_norm)``: ``"updated"``; ``"nonfinite"`` when the gradient norm
            was inf/NaN (the update is skipped and the LR clock does not advance);
            ``"no_grad"`` when none of its parameters received a gradient (nothing is done).
        """
        next_step = self.real_step + 1

        def step() -> None:
            self._set_lr(self.ft_factor * self.update_lr(next_step))
            self.optimizer.step()

        outcome, norm = apply_update(
            self.optimizer,
            self.params,
            step=step,
            scaler=scaler,
            max_norm=self.grad_clip,
            norm_type=self.grad_norm_type,
        )
        if outcome == UPDATED:
            self.real_step = next_step
        elif outcome == NONFINITE:
            self.skipped_updates += 1
        return outcome, norm

    def is_due(self, step_num: int) -> bool:
        """Whether micro-step ``step_num`` (from 1) belongs to a window this one updates in."""
        window = (step_num - 1) // self.accum_grad + 1
        return window % self.step_per_update == 0

    def step(self, losses: Mapping[str, torch.Tensor], step_num: int) -> str | None:
        """Single-optimizer training step (without DDP no_sync; use a group for that).

        Args:
            losses: named losses; ``losses[optim_loss]`` is back-propagated divided by
                ``accum_grad`` (out of place: the caller's tensor is not modified).
            step_num: the micro-step number, from 1.

        Returns:
            The outcome of :meth:`apply_update` at the end of a window, else None.
        """
        if not self.is_due(step_num):
            return None
        if self.optim_loss not in losses:
            raise OptimConfigError(
                f"{self._where('optim_loss')}={self.optim_loss!r} is not a loss of this step; "
                f"losses given: {', '.join(losses) or '(none)'}"
            )
        loss = losses[self.optim_loss] / self.accum_grad
        scaler = self._scaler()
        (scaler.scale(loss) if scaler is not None else loss).backward(inputs=self.params)
        if step_num % self.accum_grad != 0:
            return None
        outcome, _ = self.apply_update(scaler)
        if scaler is not None and outcome != NO_GRAD:
            scaler.update()
        return outcome

    def _scaler(self) -> torch.amp.GradScaler | None:
        if self.use_amp and self._own_scaler is None:
            self._own_scaler = torch.amp.GradScaler(self.params[0].device.type)
        return self._own_scaler

    # ----- state -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Optimizer state and step counters (loadable with ``torch.load(weights_only=True)``)."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "real_step": self.real_step,
            "skipped_updates": self.skipped_updates,
        }
        if self._own_scaler is not None:
            state["scaler"] = self._own_scaler.state_dict()
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore the state, then recompute the LR from (real_step, base LR, ft_factor).

        The LR saved inside the optimizer state is overwritten: the schedule of *this*
        config decides it, so a new ``ft_factor`` takes effect and warmup never restarts.
        """
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # parameter groups of another model
            raise OptimConfigError(
                f"optim_sches.{self.name}: the saved optimizer state does not fit this model's "
                f"{self._where('updated_modules')} ({str(exc).splitlines()[0]})"
            ) from None
        self.real_step = int(state["real_step"])
        self.skipped_updates = int(state.get("skipped_updates", 0))
        if "scaler" in state and self._scaler() is not None:
            self._own_scaler.load_state_dict(state["scaler"])
        self._set_lr(self.ft_factor * self.update_lr(max(self.real_step, 1)))

    def __repr__(self) -> str:
        fields = [
            f"name={self.name!r}",
            f"optim_type={self.optim_type}",
            f"optim_conf={self.optim_conf}",
            f"optim_loss={self.optim_loss!r}",
            f"updated_modules={self.updated_modules or 'all'}",
            f"step_per_update={self.step_per_update}",
            f"accum_grad={self.accum_grad}",
            f"ft_factor={self.ft_factor}",
            f"grad_clip={self.grad_clip}",
            f"grad_norm_type={self.grad_norm_type}",
            f"distributed={self.distributed}",
        ]
        extra = self.extra_repr_fn()
        if extra:
            fields.append(extra)
        return f"{type(self).__name__}({', '.join(fields)})"
