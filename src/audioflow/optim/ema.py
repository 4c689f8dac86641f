"""Exponential moving average of the weights of a set of modules.

Validation of a generative model is usually kinder to averaged weights than to the raw
ones; the solver keeps one :class:`ModuleDictEMA` over every module registered with
``register_ema`` and swaps it in for the valid stage.
"""

from __future__ import annotations

import torch
from torch import nn


class ModuleDictEMA:
    """EMA over the floating-point state (parameters and buffers) of named modules.

    Integer buffers (step counters such as BatchNorm's ``num_batches_tracked``) are
    copied, not averaged. The average starts from the weights at construction time.

    Args:
        module_dict: name -> module whose state is averaged (held by reference).
        decay: weight of the old average at each step, in [0, 1).
        device: where the average lives (e.g. ``"cpu"`` to spare GPU memory); None keeps
            each tensor on the device of the weight it follows.

    Raises:
        ValueError: ``decay`` outside [0, 1).
    """

    def __init__(self, module_dict: nn.ModuleDict | dict, decay: float = 0.999, device=None):
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module_dict = dict(module_dict.items())
        self.decay = float(decay)
        self.device = device
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        for name, module in self.module_dict.items():
            self.state[name] = {
                key: value.detach().to(device or value.device, copy=True)
                for key, value in module.state_dict().items()
            }
        self._bind()

    def _bind(self) -> None:
        # Detached views share storage with the live weights, so caching them once keeps
        # step() free of per-step state_dict() calls (they cost ~ms on large models).
        self._float_pairs: dict[torch.device, tuple[list, list]] = {}
        self._other_pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name, module in self.module_dict.items():
            for key, live in module.state_dict(keep_vars=True).items():
                live = live.detach()
                avg = self.state[name][key]
                if live.is_floating_point() and avg.device == live.device:
                    dsts, srcs = self._float_pairs.setdefault(live.device, ([], []))
                    dsts.append(avg)
                    srcs.append(live)
                else:
                    self._other_pairs.append((avg, live))

    @torch.no_grad()
    def step(self) -> None:
        """Move the average one step towards the current weights."""
        weight = 1.0 - self.decay
        for dsts, srcs in self._float_pairs.values():
            torch._foreach_lerp_(dsts, srcs, weight)
        for avg, live in self._other_pairs:
            if live.is_floating_point():
                avg.lerp_(live.to(avg.device), weight)
            else:
                avg.copy_(live)

    def state_dict(self) -> dict:
        """The averaged tensors per module name, plus the decay."""
        return {"decay": self.decay, "state": self.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore averages saved by :meth:`state_dict` (copied in place).

        Raises:
            KeyError: a module or tensor name is missing from ``state``.
        """
        saved = state["state"]
        with torch.no_grad():
            for name, tensors in self.state.items():
                for key, avg in tensors.items():
                    avg.copy_(saved[name][key])
