"""Optimizers whose ``step()`` goes through the optimizer protocol (AudioCraft style).

An AudioCraft solver steps its own optimizer in ``run_step``::

    self.optimizer.zero_grad()
    loss.backward()            # or self.backward(loss): needed for optim.precision=fp16
    self.optimizer.step()

:func:`audioflow.optim.build_optimizer` returns a *managed* optimizer: an instance of a
subclass of the torch class (``isinstance(opt, torch.optim.AdamW)`` holds, its state_dict,
param_groups and LR schedulers are torch's own). Once the solver hands it to an
:class:`~audioflow.optim.protocol.OptimProtocol`, ``step()`` is the protocol's update:
during an accumulation window it only lets gradients add up, and at the window's end it
unscales, averages, clips, applies the NaN policy and ``ft_factor``, then steps.
``zero_grad()`` clears only at the start of a window. Without a protocol (plain Python,
a notebook) the optimizer is the torch one.
"""

from __future__ import annotations

import torch


class ManagedOptimizer:
    """Mixin put before a torch optimizer class; see :func:`managed`.

    Attributes:
        protocol: the OptimProtocol that owns this optimizer's updates, or None.
    """

    protocol = None

    def step(self, closure=None):
        """The protocol's update (None on a micro-step that only accumulates)."""
        if self.protocol is None:
            return self.torch_step(closure)
        return self.protocol.optimizer_step(self, closure)

    def torch_step(self, closure=None):
        """The torch optimizer's own step, bypassing the protocol."""
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear gradients, except inside an accumulation window (they add up there)."""
        if self.protocol is None or self.protocol.at_window_start:
            super().zero_grad(set_to_none=set_to_none)

    def params(self) -> list[torch.Tensor]:
        """Every parameter of every group."""
        return [p for group in self.param_groups for p in group["params"]]


_CLASSES: dict[type, type] = {}


def managed(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """The managed subclass of a torch optimizer class (one per class, cached).

    Use it for an optimizer ``build_optimizer`` does not build:
    ``managed(torch.optim.RMSprop)(model.parameters(), lr=1e-3)``.

    Raises:
        TypeError: ``cls`` is not a torch optimizer class.
    """
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise TypeError(f"managed({cls!r}): expected a torch.optim.Optimizer subclass")
    if issubclass(cls, ManagedOptimizer):
        return cls
    if cls not in _CLASSES:
        doc = f"{cls.__name__} whose step() goes through audioflow's optimizer protocol."
        _CLASSES[cls] = type(cls.__name__, (ManagedOptimizer, cls), {"__doc__": doc})
    return _CLASSES[cls]
