"""OptimProtocol: the one place where audioflow runs backward passes and optimizer updates.

A solver trains in one of two styles, and both go through one protocol object:

- **AudioCraft style**: ``run_step`` calls ``self.optimizer.step()`` on an optimizer built
  by :func:`audioflow.optim.build_optimizer` (a managed optimizer, see managed.py); its
  ``step()`` calls :meth:`OptimProtocol.optimizer_step`.
- **Named losses** (SpeeChain's OptimSchedulers): ``run_step`` returns ``{"loss name":
  tensor}`` and the solver hands them to :meth:`OptimProtocol.backward_losses`.

The solver drives every micro-step the same way::

    with protocol.micro_step(step_num, modules):    # no_sync but on the last, autocast
        metrics = run_step(batch)                   # may call optimizer.step()
        protocol.backward_losses(losses)            # named losses only
    result = protocol.finish_micro_step()           # a WindowResult at a window's end

The protocol owns AMP (autocast, one GradScaler), accumulation (DDP ``no_sync`` on the
micro-steps that do not end a window, so exactly one all-reduce per update), clipping with
the gradient norm returned per optimizer, the NaN policy per optimizer (a non-finite
gradient skips that optimizer's update only, and is counted), ``ft_factor`` and the LR
clock (each optimizer's update count).

Why named losses are back-propagated the way they are: each OptimScheduler must receive the
gradient of *its own* loss for *its own* parameters (a generator's adversarial loss must not
leak into the discriminator's gradients), and DDP must see exactly one backward per forward.
So each loss's gradients are taken with ``torch.autograd.grad`` restricted to the parameters
it trains (the graph is retained until the last loss of the micro-step, so shared
sub-graphs work), and the result is accumulated into ``.grad`` by a single backward from
the parameters themselves: that one pass fires DDP's hooks, whose bucketed all-reduce then
runs once, on the last micro-step of the window only. Every loss is back-propagated on the
micro-step that computed it, so a window holds one micro-batch's graph at a time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn

from .errors import OptimConfigError
from .managed import ManagedOptimizer
from .scheduler import OptimScheduler, unwrap_model
from .update import NO_GRAD, NONFINITE, UPDATED, apply_update, check_ft_factor

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DDP = nn.parallel.DistributedDataParallel


def _graph_params(tensors) -> set[int]:
    """ids of the leaf tensors (parameters) the autograd graphs of ``tensors`` reach."""
    found: set[int] = set()
    stack = [t.grad_fn for t in tensors if isinstance(t, torch.Tensor) and t.grad_fn]
    seen = set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad nodes hold their leaf
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def _tensors(obj) -> Iterator[torch.Tensor]:
    """Every tensor inside a forward's output (tensors, sequences, mappings, dataclasses)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, Mapping):
        for item in obj.values():
            yield from _tensors(item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, field.name))


@dataclasses.dataclass
class WindowResult:
    """What one update window did, per optimizer name.

    Attributes:
        outcomes: name -> ``"updated"``, ``"nonfinite"`` (skipped) or ``"no_grad"``.
        grad_norms: name -> pre-clipping gradient norm (0-dim tensor) of those with grads.
        lrs: name -> learning rate (``lr/<name>/<group>`` keys for several param groups).
    """

    outcomes: dict[str, str]
    grad_norms: dict[str, torch.Tensor]
    lrs: dict[str, float]

    @property
    def moved(self) -> bool:
        """Whether at least one optimizer updated its parameters."""
        return UPDATED in self.outcomes.values()

    @property
    def skipped(self) -> list[str]:
        """The optimizers whose update was skipped for non-finite gradients."""
        return [name for name, outcome in self.outcomes.items() if outcome == NONFINITE]

    def metrics(self) -> dict:
        """``lr/<opt>`` and ``grad_norm/<opt>`` keys for the per-update train metrics."""
        out: dict = {f"lr/{name}": lr for name, lr in self.lrs.items()}
        out.update({f"grad_norm/{name}": norm for name, norm in self.grad_norms.items()})
        return out


class OptimProtocol:
    """The optimizers of a solver (named OptimSchedulers and/or managed optimizers).

    Args:
        optim_sches: name -> OptimScheduler, each over a disjoint set of parameters.
        model: the model the OptimSchedulers train (DDP-wrapped or not).
        accum_grad: micro-steps per update (update window).
        precision: ``fp32``, ``bf16`` (autocast, no scaler) or ``fp16`` (autocast + one
            GradScaler shared by every optimizer).
        ft_factor: LR multiplier of managed optimizers (OptimSchedulers apply their own).
        max_norm: gradient clipping of managed optimizers; 0 = off.
        device_type: where autocast and the scaler run (default: that of the parameters).

    Attributes:
        scaler: the GradScaler (fp16) or None.
        real_step: windows in which at least one optimizer updated.
        skipped_updates: windows in which some update was skipped for non-finite gradients.
        updates, skips: per optimizer name, its updates done and skipped (the LR clock).

    Raises:
        OptimConfigError: bad precision/accum_grad, or two OptimSchedulers sharing a parameter.
    """

    def __init__(
        self,
        optim_sches: Mapping[str, OptimScheduler] | None = None,
        model: nn.Module | None = None,
        *,
        accum_grad: int = 1,
        precision: str = "fp32",
        ft_factor: float = 1.0,
        max_norm: float = 0.0,
        device_type: str | None = None,
    ):
        if precision not in PRECISIONS:
            raise OptimConfigError(
                f"optim.precision={precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}"
            )
        if isinstance(accum_grad, bool) or not isinstance(accum_grad, int) or accum_grad < 1:
            raise OptimConfigError(f"optim.accum_grad={accum_grad!r}: must be an integer >= 1")
        if optim_sches is not None and not optim_sches:
            raise OptimConfigError("optim_sches is empty: define at least one OptimScheduler")
        self._sches = dict(optim_sches or {})
        self._managed: dict[str, ManagedOptimizer] = {}
        self.accum_grad = accum_grad
        self.precision = precision
        self.ft_factor = check_ft_factor(ft_factor)
        self.max_norm = float(max_norm or 0.0)
        self._model = model
        self._inner = unwrap_model(model) if model is not None else None
        self._check_disjoint()
        self._trainable = (
            {id(p) for p in self._inner.parameters() if p.requires_grad} if model else set()
        )
        if device_type is None:
            first = next(iter(self._sches.values())).params[0] if self._sches else None
            device_type = first.device.type if first is not None else "cpu"
        self.device_type = device_type
        self.scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
        self.real_step = 0
        self.skipped_updates = 0
        self.updates: dict[str, int] = {}
        self.skips: dict[str, int] = {}
        self._covers: dict[tuple[str, ...], bool] = {}
        # the micro-step in progress (None outside one) and what its window did so far
        self._step_num: int | None = None
        self._outcomes: dict[str, str] = {}
        self._norms: dict[str, torch.Tensor] = {}
        self._scaled_backward = False
        self._got_grad: set[str] = set()  # OptimSchedulers a loss reached this window
        # DDP with find_unused_parameters: the parameters its forwards reached this micro-step
        self._forward_params: set[int] = set()
        self._outside_forward: dict[int, torch.Tensor] = {}
        self._hooked: set[int] = set()
        self.last_window: WindowResult | None = None

    def _check_disjoint(self) -> None:
        owner: dict[int, str] = {}
        for name, sche in self._sches.items():
            for p in sche.params:
                other = owner.setdefault(id(p), name)
                if other != name:
                    raise OptimConfigError(
                        f"optim_sches.{other} and optim_sches.{name} update the same parameters; "
                        "give each module to one OptimScheduler with updated_modules"
                    )

    def adopt(self, name: str, optimizer: ManagedOptimizer) -> None:
        """Route a managed optimizer's ``step()`` through this protocol under ``name``.

        Raises:
            OptimConfigError: the optimizer is a plain torch one (its step cannot be routed).
        """
        if not isinstance(optimizer, ManagedOptimizer):
            raise OptimConfigError(
                f"{name} is a plain {type(optimizer).__name__}: build it with "
                "audioflow.optim.build_optimizer(params, cfg.optim), or "
                "audioflow.optim.managed(torch.optim.X)(params, ...), so that its step() "
                "gets accumulation, precision, clipping and the NaN policy"
            )
        optimizer.protocol = self
        self._managed[name] = optimizer

    # ----- access ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The optimizer names: OptimSchedulers in config order, then managed optimizers."""
        return [*self._sches, *self._managed]

    def __getitem__(self, name: str) -> OptimScheduler:
        return self._sches[name]

    def __iter__(self) -> Iterator[OptimScheduler]:
        return iter(self._sches.values())

    def __len__(self) -> int:
        return len(self._sches)

    def get_lrs(self) -> dict[str, float]:
        """OptimScheduler name -> current learning rate."""
        return {name: sche.get_lr() for name, sche in self._sches.items()}

    def lrs(self) -> dict[str, float]:
        """Every optimizer's LR as it steps (ft_factor included); ``name/<group>`` when a
        managed optimizer has several param groups."""
        out = self.get_lrs()
        for name, opt in self._managed.items():
            groups = opt.param_groups
            for i, group in enumerate(groups):
                key = name if len(groups) == 1 else f"{name}/{i}"
                out[key] = float(group["lr"]) * self.ft_factor
        return out

    @property
    def at_window_start(self) -> bool:
        """Whether the micro-step in progress starts a window (or none is in progress)."""
        return self._step_num is None or (self._step_num - 1) % self.accum_grad == 0

    def is_last_micro_step(self, step_num: int) -> bool:
        """Whether ``step_num`` ends an accumulation window (an update happens)."""
        return step_num % self.accum_grad == 0

    # ----- contexts ----------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision autocast for the forward (a no-op context for fp32)."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    @contextlib.contextmanager
    def accumulate(self, model: nn.Module | Iterable[nn.Module], step_num: int):
        """Wrap forward AND backward of micro-step ``step_num``: DDP ``no_sync`` but on the last.

        DDP decides at forward time whether the coming backward all-reduces, so the forward
        must already be inside ``no_sync``; wrapping only the backward (as many trainers do)
        still all-reduces every micro-batch.

        Args:
            model: the DDP module(s) of this micro-step (others are ignored).
            step_num: the micro-step number, from 1.
        """
        self._check_step_num(step_num)
        modules = [model] if isinstance(model, nn.Module) else list(model)
        ddps = [m for m in modules if isinstance(m, DDP)]
        sync = self.is_last_micro_step(step_num)
        self._step_num = step_num
        self._forward_params = set()
        for ddp in ddps:
            self._hook(ddp)
        with contextlib.ExitStack() as stack:
            for ddp in ddps if not sync else []:
                stack.enter_context(ddp.no_sync())
            yield

    @contextlib.contextmanager
    def micro_step(self, step_num: int, modules: Iterable[nn.Module] = ()):
        """One micro-step of a solver: :meth:`accumulate` over ``modules`` and autocast."""
        with self.accumulate(list(modules), step_num), self.autocast():
            yield

    def _hook(self, ddp: DDP) -> None:
        # With find_unused_parameters DDP marks every parameter its forward did not reach
        # as ready before the backward; a gradient reaching one later (a submodule called
        # through .module, outside DDP's forward) would be marked twice. Recording what the
        # forwards reached lets the backward accumulate the others itself (see _backward).
        if not ddp.find_unused_parameters or id(ddp) in self._hooked:
            return
        self._hooked.add(id(ddp))

        def record(_module, _inputs, output):
            self._forward_params |= _graph_params(_tensors(output))

        ddp.register_forward_hook(record)

    # ----- AudioCraft style ----------------------------------------------------------------
    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` through the GradScaler when fp16 (what ``self.backward`` runs)."""
        self._scaled_backward = True
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def optimizer_step(self, optimizer: ManagedOptimizer, closure=None):
        """A managed optimizer's ``step()``: accumulate, or update at the window's end.

        Raises:
            OptimConfigError: fp16 with gradients from a plain ``loss.backward()``.
        """
        if self._step_num is None:  # outside the solver's train loop: the torch step
            return optimizer.torch_step(closure)
        if not self.is_last_micro_step(self._step_num):
            return None  # the gradients of this micro-batch add to the window's
        name = next(n for n, o in self._managed.items() if o is optimizer)
        if self.scaler is not None and not self._scaled_backward:
            raise OptimConfigError(
                "optim.precision=fp16 scales the loss before backward: call "
                "self.backward(loss) in run_step instead of loss.backward()"
            )
        outcome, norm = apply_update(
            optimizer,
            optimizer.params(),
            step=lambda: optimizer.torch_step(closure),
            scaler=self.scaler,
            max_norm=self.max_norm,
            grad_scale=1.0 / self.accum_grad,  # a mean over the window's micro-batches
            lr_scale=self.ft_factor,
        )
        self._record(name, outcome, norm)
        return None

    # ----- named losses ----------------------------------------------------------------------
    def backward_losses(self, losses: Mapping[str, torch.Tensor | None]) -> None:
        """Back-propagate every due loss of this micro-step into its OptimSchedulers.

        Args:
            losses: the solver's named losses; each OptimScheduler back-propagates
                ``losses[optim_loss] / accum_grad`` (a new tensor: the caller's losses are
                untouched). None sits its OptimSchedulers out for this micro-step: the
                gradients of the window's other micro-steps still make their update.

        Raises:
            OptimConfigError: an ``optim_loss`` that is not a key of ``losses``.
        """
        if self._step_num is None:
            raise RuntimeError("backward_losses() runs inside protocol.micro_step()")
        self._check_losses(losses)
        due = [
            name
            for name, sche in self._sches.items()
            if sche.is_due(self._step_num) and losses[sche.optim_loss] is not None
        ]
        self._backward(due, losses)

    def step(self, losses: Mapping[str, torch.Tensor | None], step_num: int) -> dict:
        """One micro-step of named losses: backward, and at a window's end the updates.

        Returns:
            ``{"updated": bool, "skipped_nonfinite": bool, "lr": {name: float}}``.
        """
        self._check_step_num(step_num)
        self._step_num = step_num
        self.backward_losses(losses)
        result = self.finish_micro_step()
        if result is None:
            return {"updated": False, "skipped_nonfinite": False, "lr": self.get_lrs()}
        return {"updated": result.moved, "skipped_nonfinite": bool(result.skipped),
                "lr": self.get_lrs()}  # fmt: skip

    # ----- the end of a micro-step -------------------------------------------------------------
    def finish_micro_step(self) -> WindowResult | None:
        """End the micro-step; at a window's end update the OptimSchedulers and report.

        Returns:
            The window's :class:`WindowResult` when it ended (also ``last_window``), else None.
        """
        step_num = self._step_num
        if step_num is None:
            return None
        self._step_num = None
        if not self.is_last_micro_step(step_num):
            return None
        self._sync_outside_forward()
        for name in self._sches:
            if name in self._got_grad:
                self._record(name, *self._sches[name].apply_update(self.scaler))
        if self.scaler is not None and any(o != NO_GRAD for o in self._outcomes.values()):
            self.scaler.update()  # once, after every optimizer of the window ran
        if self._inner is not None:
            # drop what this window left behind (incl. zero fills for DDP's buckets)
            self._inner.zero_grad(set_to_none=True)
        result = WindowResult(dict(self._outcomes), dict(self._norms), self.lrs())
        self.real_step += int(result.moved)
        self.skipped_updates += int(bool(result.skipped))
        self._outcomes, self._norms, self._scaled_backward = {}, {}, False
        self._got_grad = set()
        self.last_window = result
        return result

    def _record(self, name: str, outcome: str, norm: torch.Tensor | None) -> None:
        self._outcomes[name] = outcome
        if norm is not None:
            self._norms[name] = norm
        if outcome == UPDATED:
            self.updates[name] = self.updates.get(name, 0) + 1
        elif outcome == NONFINITE:
            self.skips[name] = self.skips.get(name, 0) + 1

    def _check_step_num(self, step_num: int) -> None:
        if isinstance(step_num, bool) or not isinstance(step_num, int) or step_num < 1:
            raise ValueError(f"step_num={step_num!r}: micro-steps are counted from 1")

    def _check_losses(self, losses: Mapping) -> None:
        for name, sche in self._sches.items():
            if sche.optim_loss not in losses:
                raise OptimConfigError(
                    f"optim_sches.{name}.conf.optim_loss={sche.optim_loss!r} is not a loss of "
                    f"this solver; valid loss names: {', '.join(map(str, losses)) or '(none)'}"
                )

    def _backward(self, due: list[str], losses: Mapping) -> None:
        # Group the due OptimSchedulers by loss: one gradient computation per loss.
        by_loss: dict[str, list[str]] = {}
        for name in due:
            by_loss.setdefault(self._sches[name].optim_loss, []).append(name)
        scaled = {}
        for loss_name in by_loss:
            loss = losses[loss_name]
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not loss.requires_grad:
                raise OptimConfigError(
                    f"loss {loss_name!r} must be a scalar tensor with a graph to back-propagate "
                    f"(got {type(loss).__name__}); compute it outside torch.no_grad()"
                )
            if self.accum_grad > 1:
                loss = loss / self.accum_grad  # out of place: never touch the caller's tensor
            scaled[loss_name] = self.scaler.scale(loss) if self.scaler is not None else loss

        ddp = self._ddp_syncing()
        model = self._model
        find_unused = isinstance(model, DDP) and model.find_unused_parameters
        if len(scaled) == 1 and not find_unused:
            (loss_name,) = scaled
            if self._covers_model(tuple(by_loss[loss_name])):
                scaled[loss_name].backward()
                self._got_grad.update(by_loss[loss_name])
                return

        leaves: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        for i, (loss_name, loss) in enumerate(scaled.items()):
            params = [p for n in by_loss[loss_name] for p in self._sches[n].params]
            retain = i < len(scaled) - 1  # shared sub-graphs: keep the graph for later losses
            computed = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
            owners = by_loss[loss_name]
            reached = {id(p) for p, g in zip(params, computed, strict=True) if g is not None}
            self._got_grad.update(
                n for n in owners if any(id(p) in reached for p in self._sches[n].params)
            )
            for p, g in zip(params, computed, strict=True):
                if g is None:
                    continue
                if find_unused and id(p) not in self._forward_params:
                    # no DDP hook may fire for it (DDP marks it ready itself): accumulated
                    # here on every micro-step, averaged over ranks at the window's end
                    p.grad = g if p.grad is None else p.grad + g
                    self._outside_forward[id(p)] = p
                else:
                    leaves.append(p)
                    grads.append(g)
        if ddp is not None:
            # DDP waits for a gradient for every parameter its forward reached before it
            # reduces a bucket: give zeros to those no due loss reached (they are cleared
            # after the window). Without find_unused_parameters that is every parameter.
            have = {id(p) for p in leaves}
            for p in ddp.parameters():
                if p.requires_grad and id(p) not in have:
                    if not find_unused or id(p) in self._forward_params:
                        leaves.append(p)
                        grads.append(torch.zeros_like(p))
        if leaves:
            # One backward from the parameters themselves: accumulates into .grad and fires
            # DDP's hooks once, so its all-reduce happens exactly when sync is on.
            torch.autograd.backward(leaves, grads)

    def _sync_outside_forward(self) -> None:
        """Average over ranks the gradients DDP left alone (parameters outside its forward)."""
        params = [p for p in self._outside_forward.values() if p.grad is not None]
        self._outside_forward = {}
        if not params or not (dist.is_available() and dist.is_initialized()):
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n

    def _covers_model(self, names: tuple[str, ...]) -> bool:
        """Whether these OptimSchedulers together own every trainable parameter (cached)."""
        if names not in self._covers:
            owned = {id(p) for n in names for p in self._sches[n].params}
            self._covers[names] = owned == self._trainable
        return self._covers[names]

    def _ddp_syncing(self) -> DDP | None:
        model = self._model
        if isinstance(model, DDP) and model.require_backward_grad_sync:
            return model
        return None

    # ----- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The OptimSchedulers' states, the scaler and the counters (managed optimizers'
        own states are registered by the solver under their names)."""
        return {
            "optim_sches": {name: sche.state_dict() for name, sche in self._sches.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "real_step": self.real_step,
            "skipped_updates": self.skipped_updates,
            "updates": dict(self.updates),
            "skips": dict(self.skips),
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Restore a state; LRs are recomputed from each step count and the current config.

        Raises:
            OptimConfigError: the saved OptimScheduler names differ from the configured ones.
        """
        saved = state["optim_sches"]
        if set(saved) != set(self._sches):
            raise OptimConfigError(
                f"the checkpoint holds optim_sches {sorted(saved)} but the config defines "
                f"{sorted(self._sches)}; use the same names to resume"
            )
        for name, sche in self._sches.items():
            sche.load_state_dict(saved[name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.real_step = int(state.get("real_step", 0))
        self.skipped_updates = int(state.get("skipped_updates", 0))
        self.updates = dict(state.get("updates", {}))
        self.skips = dict(state.get("skips", {}))

    def __repr__(self) -> str:
        inner = "\n".join(f"  {name}: {sche!r}" for name, sche in self._sches.items())
        inner += "".join(f"\n  {n}: {type(o).__name__}" for n, o in self._managed.items())
        return (
            f"OptimProtocol(accum_grad={self.accum_grad}, precision={self.precision},\n{inner}\n)"
        )
