"""audioflow.optim: the one optimizer protocol, OptimSchedulers and managed optimizers.

- :class:`OptimProtocol` runs every backward and update of a solver (AMP, accumulation,
  clipping, NaN policy, ``ft_factor``); see docs/optim.md.
- :func:`build_optim_sches` turns ``cfg.optim_sches`` into a protocol over OptimSchedulers.
- :func:`build_optimizer` builds an AudioCraft-style optimizer from ``cfg.optim``, whose
  ``step()`` goes through the solver's protocol; :func:`managed` does it for any class.
"""

from .builder import (
    BUILTIN_TYPES,
    adopt_optimizers,
    build_optim_sches,
    build_optimizer,
    build_protocol,
    build_solver_protocol,
)
from .errors import OptimConfigError
from .managed import ManagedOptimizer, managed
from .protocol import OptimProtocol, WindowResult
from .scheduler import OptimScheduler

__all__ = [
    "BUILTIN_TYPES",
    "ManagedOptimizer",
    "OptimConfigError",
    "OptimProtocol",
    "OptimScheduler",
    "WindowResult",
    "adopt_optimizers",
    "build_optim_sches",
    "build_optimizer",
    "build_protocol",
    "build_solver_protocol",
    "managed",
]
