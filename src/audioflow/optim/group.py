"""OptimSchedulerGroup: one training step for all OptimSchedulers, right under DDP/AMP/accumulation.

The solver drives it as::

    for step_num, batch in enumerate(loader, start=1):         # micro-steps from 1
        with group.accumulate(model, step_num):                 # no_sync but on the last
            with group.autocast():
                losses = run_step(batch)                        # {"loss": ..., "d_loss": ...}
            out = group.step(losses, step_num)                  # backward(s), then updates

Why the backward passes look the way they do: each OptimScheduler must receive the gradient
of *its own* loss for *its own* parameters (a generator's adversarial loss must not leak
into the discriminator's gradients), every backward of the step must finish before any
optimizer steps, and DDP must see exactly one backward per forward. So each loss's gradients
are taken with ``torch.autograd.grad`` restricted to the parameters it trains (the graph is
retained until the last loss, so shared sub-graphs work), and the result is accumulated into
``.grad`` by a single backward from the parameters themselves: that one pass fires DDP's
hooks, whose bucketed all-reduce then runs once, on the last micro-step of the window only.
When a single loss trains every parameter, a plain ``loss.backward()`` does the same job and
keeps DDP's overlap of communication with computation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from .errors import OptimConfigError
from .scheduler import NO_GRAD, NONFINITE, UPDATED, OptimScheduler, unwrap_model

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


class OptimSchedulerGroup:
    """The named OptimSchedulers of a solver, stepped together.

    Args:
        optim_sches: name -> OptimScheduler, each over a disjoint set of parameters.
        model: the model they train (DDP-wrapped or not).
        accum_grad: micro-steps per real step (update window).
        precision: ``fp32``, ``bf16`` (autocast, no scaler) or ``fp16`` (autocast + one
            GradScaler shared by all OptimSchedulers).

    Attributes:
        scaler: the GradScaler (fp16) or None.
        skipped_updates: windows in which some update was skipped for non-finite gradients.

    Raises:
        OptimConfigError: bad precision/accum_grad, or two OptimSchedulers sharing a parameter.
    """

    def __init__(
        self,
        optim_sches: Mapping[str, OptimScheduler],
        model: nn.Module,
        *,
        accum_grad: int = 1,
        precision: str = "fp32",
    ):
        if precision not in PRECISIONS:
            raise OptimConfigError(
                f"optim.precision={precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}"
            )
        if isinstance(accum_grad, bool) or not isinstance(accum_grad, int) or accum_grad < 1:
            raise OptimConfigError(f"optim.accum_grad={accum_grad!r}: must be an integer >= 1")
        if not optim_sches:
            raise OptimConfigError("optim_sches is empty: define at least one OptimScheduler")
        self._sches = dict(optim_sches)
        self.accum_grad = accum_grad
        self.precision = precision
        self._model = model
        self._inner = unwrap_model(model)
        self._check_disjoint()
        self._trainable = {id(p) for p in self._inner.parameters() if p.requires_grad}
        first = next(iter(self._sches.values())).params[0]
        self.device_type = first.device.type
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == "fp16" else None
        self.real_step = 0
        self.skipped_updates = 0
        self._got_grad = {name: False for name in self._sches}
        self._active: nn.Module | None = None
        self._covers: dict[tuple[str, ...], bool] = {}

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

    # ----- access ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The OptimScheduler names, in config order."""
        return list(self._sches)

    def __getitem__(self, name: str) -> OptimScheduler:
        return self._sches[name]

    def __iter__(self) -> Iterator[OptimScheduler]:
        return iter(self._sches.values())

    def __len__(self) -> int:
        return len(self._sches)

    def get_lrs(self) -> dict[str, float]:
        """name -> current learning rate."""
        return {name: sche.get_lr() for name, sche in self._sches.items()}

    # ----- contexts ----------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision autocast for the forward (a no-op context for fp32)."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def is_last_micro_step(self, step_num: int) -> bool:
        """Whether ``step_num`` ends an accumulation window (an update happens)."""
        return step_num % self.accum_grad == 0

    @contextlib.contextmanager
    def accumulate(self, model: nn.Module, step_num: int):
        """Wrap forward AND step of micro-step ``step_num``: DDP ``no_sync`` but on the last.

        DDP decides at forward time whether the coming backward all-reduces, so the forward
        must already be inside ``no_sync``; wrapping only the backward (as many trainers do)
        still all-reduces every micro-batch.
        """
        self._check_step_num(step_num)
        sync = self.is_last_micro_step(step_num)
        ddp = isinstance(model, nn.parallel.DistributedDataParallel)
        self._active = model
        try:
            with model.no_sync() if ddp and not sync else contextlib.nullcontext():
                yield
        finally:
            self._active = None

    # ----- the step ----------------------------------------------------------------------
    def step(self, losses: Mapping[str, torch.Tensor | None], step_num: int) -> dict:
        """Back-propagate every due loss, and at the end of a window update every due optimizer.

        Args:
            losses: the solver's named losses; each OptimScheduler back-propagates
                ``losses[optim_loss] / accum_grad`` (a new tensor: the caller's losses are
                untouched). A value of None makes its OptimSchedulers sit this step out.
            step_num: the micro-step number, from 1.

        Returns:
            ``{"updated": bool, "skipped_nonfinite": bool, "lr": {name: float}}``; updated is
            True when at least one optimizer stepped.

        Raises:
            OptimConfigError: an ``optim_loss`` that is not a key of ``losses``.
        """
        self._check_step_num(step_num)
        self._check_losses(losses)
        due = [
            name
            for name, sche in self._sches.items()
            if sche.is_due(step_num) and losses[sche.optim_loss] is not None
        ]
        self._backward(due, losses)
        if not self.is_last_micro_step(step_num):
            return {"updated": False, "skipped_nonfinite": False, "lr": self.get_lrs()}

        outcomes = {}
        for name in due:
            if self._got_grad[name]:
                outcomes[name] = self._sches[name].apply_update(self.scaler)
        if self.scaler is not None and any(o != NO_GRAD for o in outcomes.values()):
            self.scaler.update()  # once, after every optimizer of the step ran
        # Drop everything this window left behind (incl. zero fills for DDP's buckets).
        self._inner.zero_grad(set_to_none=True)
        self._got_grad = dict.fromkeys(self._sches, False)
        updated = UPDATED in outcomes.values()
        skipped = NONFINITE in outcomes.values()
        self.real_step += int(updated)
        self.skipped_updates += int(skipped)
        return {"updated": updated, "skipped_nonfinite": skipped, "lr": self.get_lrs()}

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
        if len(scaled) == 1:
            (loss_name,) = scaled
            if self._covers_model(tuple(by_loss[loss_name])):
                scaled[loss_name].backward()
                for name in by_loss[loss_name]:
                    self._got_grad[name] |= self._sches[name].has_grad()
                return

        leaves: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        for i, (loss_name, loss) in enumerate(scaled.items()):
            params = [p for n in by_loss[loss_name] for p in self._sches[n].params]
            retain = i < len(scaled) - 1  # shared sub-graphs: keep the graph for later losses
            computed = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
            for p, g in zip(params, computed, strict=True):
                if g is not None:
                    leaves.append(p)
                    grads.append(g)
            for name in by_loss[loss_name]:
                mine = {id(p) for p in self._sches[name].params}
                self._got_grad[name] |= any(id(p) in mine for p in leaves)
        if ddp is not None:
            # DDP waits for a gradient for every parameter before it reduces a bucket:
            # give zeros to those no due loss reached (they are cleared after the window).
            # With find_unused_parameters, DDP itself marks the parameters outside the
            # forward graph ready, so only those inside it (reached by some loss) get zeros.
            have = {id(p) for p in leaves}
            in_graph = None
            if ddp.find_unused_parameters:
                in_graph = _graph_params(v for v in losses.values() if v is not None)
            for p in ddp.parameters():
                if p.requires_grad and id(p) not in have:
                    if in_graph is None or id(p) in in_graph:
                        leaves.append(p)
                        grads.append(torch.zeros_like(p))
        if leaves:
            # One backward from the parameters themselves: accumulates into .grad and fires
            # DDP's hooks once, so its all-reduce happens exactly when sync is on.
            torch.autograd.backward(leaves, grads)

    def _covers_model(self, names: tuple[str, ...]) -> bool:
        """Whether these OptimSchedulers together own every trainable parameter (cached)."""
        if names not in self._covers:
            owned = {id(p) for n in names for p in self._sches[n].params}
            self._covers[names] = owned == self._trainable
        return self._covers[names]

    def _ddp_syncing(self) -> nn.parallel.DistributedDataParallel | None:
        model = self._active if self._active is not None else self._model
        if isinstance(model, nn.parallel.DistributedDataParallel) and (
            model.require_backward_grad_sync
        ):
            return model
        return None

    # ----- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Every optimizer's state and counters, the scaler, the group counters."""
        return {
            "optim_sches": {name: sche.state_dict() for name, sche in self._sches.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "real_step": self.real_step,
            "skipped_updates": self.skipped_updates,
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

    def __repr__(self) -> str:
        inner = "\n".join(f"  {name}: {sche!r}" for name, sche in self._sches.items())
        return (
            f"OptimSchedulerGroup(accum_grad={self.accum_grad}, precision={self.precision},\n"
            f"{inner}\n)"
        )
