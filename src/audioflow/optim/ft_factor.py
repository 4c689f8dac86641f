"""``optim.ft_factor`` for AudioCraft-style solvers: scale optimizers built by the solver.

OptimSchedulers apply ``ft_factor`` to every LR they set (see scheduler.py). A solver
that builds its own optimizer, and maybe a ``torch.optim.lr_scheduler``, in
``build_model`` has its LRs scaled afterwards, here. A torch LRScheduler has by then
copied each group's LR into ``group["initial_lr"]`` and its ``base_lrs``, from which its
``step()`` recomputes the LR: those are scaled too, or the first step would restore the
unscaled LR.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from .errors import OptimConfigError

# Param-group keys holding an LR of the schedule (initial_lr: every LRScheduler;
# max_lr/min_lr: OneCycleLR). Absolute floors (eta_min, ReduceLROnPlateau's min_lrs)
# are left as the solver set them.
GROUP_KEYS = ("initial_lr", "max_lr", "min_lr")
# LRScheduler attributes holding per-group LRs (max_lrs: CyclicLR; _last_lr: get_last_lr).
SCHEDULER_LISTS = ("base_lrs", "max_lrs", "_last_lr")


def check_ft_factor(value) -> float:
    """``optim.ft_factor`` as a float.

    Raises:
        OptimConfigError: not a number > 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise OptimConfigError(f"optim.ft_factor={value!r}: must be a number > 0")
    return float(value)


def scale_lrs(optimizers: Iterable, candidates: Iterable, factor: float) -> None:
    """Multiply the LRs of ``optimizers`` and of their torch LRSchedulers by ``factor``.

    Args:
        optimizers: the solver's optimizers (anything else is ignored).
        candidates: objects that may be LRSchedulers (the solver's attributes); only those
            driving one of ``optimizers`` are scaled, each once (nested ones of
            SequentialLR / ChainedScheduler included).
        factor: ``optim.ft_factor``.
    """
    factor = check_ft_factor(factor)
    opts = {id(o): o for o in optimizers if isinstance(o, torch.optim.Optimizer)}
    if factor == 1.0 or not opts:
        return
    for opt in opts.values():
        for group in opt.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].mul_(factor)  # in place: a tensor LR may be captured by a graph
            else:
                group["lr"] *= factor
            for key in GROUP_KEYS:
                if key in group:
                    group[key] = _times(group[key], factor)
    for sched in _schedulers(candidates):
        if id(getattr(sched, "optimizer", None)) not in opts:
            continue
        for attr in SCHEDULER_LISTS:
            values = getattr(sched, attr, None)
            if isinstance(values, list):
                setattr(sched, attr, [_times(v, factor) for v in values])


def _schedulers(candidates: Iterable) -> list[LRScheduler]:
    found: dict[int, LRScheduler] = {}
    todo = list(candidates)
    while todo:
        obj = todo.pop()
        if isinstance(obj, LRScheduler) and id(obj) not in found:
            found[id(obj)] = obj
            todo.extend(getattr(obj, "_schedulers", []))
    return list(found.values())


def _times(value, factor: float):
    # a new value, never in place: lists of a scheduler may share tensors with the groups
    return value * factor if isinstance(value, int | float) or torch.is_tensor(value) else value
