"""Whether a solver is built to train: the switch valid/evaluate/generate jobs and exports
turn off (see :func:`not_training`), read once by ``StandardSolver.__init__``."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

# Whether the solvers built now may train: False inside not_training().
_TRAINS = contextvars.ContextVar("audioflow_solver_trains", default=True)


@contextmanager
def not_training() -> Iterator[None]:
    """Build solvers in this block for stages other than train: their ``trains`` is False.

    `audioflow run --stage valid|evaluate|generate` and `audioflow export` build the
    solver so. The built-in solvers then build no optimizer (as Lightning calls
    ``configure_optimizers`` only to fit), and the base builds no OptimSchedulers and
    loads no optimizer state: constructing a torch optimizer loads TorchDynamo, ~2 s of
    a short stage job on 2 cores. A solver that builds its optimizers anyway still works.
    """
    token = _TRAINS.set(False)
    try:
        yield
    finally:
        _TRAINS.reset(token)


def builds_to_train() -> bool:
    """True unless inside :func:`not_training`."""
    return _TRAINS.get()
