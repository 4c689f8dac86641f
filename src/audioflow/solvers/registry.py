"""Solver registry: the ``solver`` config key names a registered solver or a class path.

``solver: compression`` picks a solver shipped with audioflow; ``solver: my_pkg.mod.MySolver``
(or ``my_pkg.mod:MySolver``) picks a class of the user's, importable from the working
directory, the ``--config-dir`` folder or an installed package.
"""

from __future__ import annotations

import importlib

SOLVERS: dict[str, str] = {
    "compression": "audioflow.solvers.compression:CompressionSolver",
    "asr": "audioflow.solvers.asr:AsrSolver",
    "lm": "audioflow.solvers.lm:LMSolver",
}


class SolverNotFoundError(ValueError):
    """The ``solver`` key names nothing that can be imported."""


def _split(target: str) -> tuple[str, str]:
    if ":" in target:
        module, _, cls = target.partition(":")
    else:
        module, _, cls = target.rpartition(".")
    return module, cls


def get_solver_class(name: str) -> type:
    """The solver class for a registered name or a dotted path.

    Raises:
        SolverNotFoundError: unknown name, module not importable or class not found; the
            message names the ``solver`` value and lists the registered names.
    """
    target = SOLVERS.get(name, name)
    module_name, cls_name = _split(target)
    known = ", ".join(sorted(SOLVERS))
    if not module_name or not cls_name:
        raise SolverNotFoundError(
            f"solver={name}: not a registered solver ({known}) nor a dotted path "
            "such as my_pkg.my_module.MySolver"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SolverNotFoundError(
            f"solver={name}: cannot import module {module_name} ({exc}); registered solvers: "
            f"{known}; put your module on PYTHONPATH or in the --config-dir folder"
        ) from exc
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise SolverNotFoundError(f"solver={name}: module {module_name} has no class {cls_name}")
    return cls
