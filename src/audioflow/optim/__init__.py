"""audioflow.optim: OptimSchedulers (SpeeChain's design) and the AudioCraft-style optimizer.

- :func:`build_optim_sches` turns ``cfg.optim_sches`` into an :class:`OptimSchedulerGroup`,
  the object a solver steps; see docs/optim.md for the config format.
- :func:`build_optimizer` builds one plain optimizer from ``cfg.optim``.
"""

from .builder import BUILTIN_TYPES, build_optim_sches, build_optimizer
from .errors import OptimConfigError
from .group import OptimSchedulerGroup
from .scheduler import OptimScheduler

__all__ = [
    "BUILTIN_TYPES",
    "OptimConfigError",
    "OptimScheduler",
    "OptimSchedulerGroup",
    "build_optim_sches",
    "build_optimizer",
]
