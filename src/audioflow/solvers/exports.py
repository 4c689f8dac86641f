"""What ``audioflow export`` packages for a solver, and how a package is loaded back.

A solver may define ``exports()`` (interface 3 of the solver API): it returns an
:class:`Export`, the modules to package, extra metadata and the loader that rebuilds them.
A solver without it exports its registered best modules (``register_best``, usually
``model``), reloaded by :func:`load_solver_models` through the solver's own
``build_model`` with no export code of its own. A solver that sets ``exports = None``
exports nothing: ``audioflow export`` and the workflow's ``publish:`` refuse its XPs.

The modules are rebuilt by a *model-only* solver (:func:`model_only_solver`): the solver
class with its config and device, on which only ``build_model`` runs (no XP folder
written, no data loaded, no process group), since an exported XP's data may be gone.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioflow.config.xp import XP, using_xp
from audioflow.solvers.state import StateManager

DEFAULT_LOADER = "audioflow.solvers.exports:load_solver_models"


@dataclass(frozen=True)
class Export:
    """What a solver packages.

    Attributes:
        modules: name -> module whose ``state_dict`` goes into ``model.th`` (one module:
            its flat state dict; several: ``{name: state_dict}``).
        metadata: entries merged into ``metadata.json`` (e.g. a codec's contract).
        loader: ``"module:function"`` called as ``function(folder, device)`` by
            :func:`load_export` to rebuild what the package holds.
    """

    modules: dict[str, nn.Module]
    metadata: dict = field(default_factory=dict)
    loader: str = DEFAULT_LOADER

    def state(self) -> dict:
        """The content of ``model.th``."""
        states = {name: module.state_dict() for name, module in self.modules.items()}
        return next(iter(states.values())) if len(states) == 1 else states


class ExportError(ValueError):
    """A solver or an XP that cannot be exported (the message says why and what to do)."""


def declares_no_export(solver_cls: type) -> bool:
    """Whether the class opted out of export (``exports = None``)."""
    return hasattr(solver_cls, "exports") and solver_cls.exports is None


def export_refusal(solver_name: str) -> str | None:
    """Why XPs of solver ``solver_name`` cannot be exported, or None.

    Imports the solver's module (planning calls this only for the XPs ``publish:`` names).
    """
    from audioflow.solvers.registry import SolverNotFoundError, get_solver_class

    try:
        cls = get_solver_class(solver_name)
    except SolverNotFoundError as exc:
        return str(exc)
    if declares_no_export(cls):
        return (
            f"solver={solver_name} declares no exports (exports = None): its XPs cannot be "
            "exported; define exports() or drop the publish: entry"
        )
    return None


def model_only_solver(solver_cls: type, cfg: Any, device: str = "cpu", xp: XP | None = None):
    """An instance of ``solver_cls`` on which only ``build_model`` ran.

    The training context (XP folder, logger, data, process group) is not set up: the
    attributes ``build_model`` reads in a task solver (``cfg``, ``device``, ``rank``,
    ``world_size``, ``logger``, the state registry, ``trains`` False) are.

    Raises:
        ExportError: ``build_model`` failed on this config (the message names the solver).
    """
    solver = solver_cls.__new__(solver_cls)
    solver.cfg = cfg
    solver.xp = xp
    solver.folder = None if xp is None else Path(xp.folder)
    solver.device = torch.device(device)
    solver.rank, solver.world_size = 0, 1
    solver.trains = False  # an export needs no optimizer (see base.not_training)
    solver.logger = logging.getLogger(f"audioflow.export.{solver_cls.__name__}")
    solver.optim_sches = None
    solver.ema = None
    solver.epoch = 0
    solver.current_stage = None
    solver.stateful = StateManager(solver)  # the registry build_model registers into
    try:
        if xp is None:
            solver.build_model()
        else:
            with using_xp(xp):
                solver.build_model()
    except Exception as exc:  # a user's build_model fails in its own ways
        raise ExportError(
            f"solver={cfg.get('solver')}: build_model failed outside training ({exc}); "
            "a solver's build_model must need only its config and device to be exported"
        ) from exc
    return solver


def solver_export(solver) -> Export:
    """The solver's :class:`Export`: its ``exports()``, or its registered best modules.

    Raises:
        ExportError: the solver exports nothing, or registers no best module.
    """
    declared = getattr(type(solver), "exports", None)
    if declares_no_export(type(solver)):
        raise ExportError(f"solver={solver.cfg.get('solver')} declares no exports")
    if callable(declared):
        export = solver.exports()
        if not isinstance(export, Export):
            raise ExportError(
                f"solver={solver.cfg.get('solver')}: exports() returned "
                f"{type(export).__name__}, not an audioflow.solvers.exports.Export"
            )
        return export
    names = list(solver.stateful.best)
    modules = {n: solver._get(n) for n in names if isinstance(solver._get(n), nn.Module)}
    if not modules:
        raise ExportError(
            f"solver={solver.cfg.get('solver')} registers no best module "
            "(register_best('model') in build_model) and defines no exports()"
        )
    return Export(modules=modules)


def load_best_into(solver, best_state: dict) -> None:
    """Load the best state's entries into the solver's registered modules."""
    for name, state in best_state.items():
        if hasattr(solver, name):
            solver._get(name).load_state_dict(state)


def load_export(folder: str | Path, device: str = "cpu") -> Any:
    """Load back what ``audioflow export`` wrote, with the loader the package names.

    Returns:
        What the loader returns: a LoadedCodec for a codec, the module (or a dict of
        modules) for a solver's default export.

    Raises:
        PackageError: not a package, or its loader cannot be imported.
    """
    from audioflow.models.package import PackageError, read_metadata

    root = Path(folder)
    metadata = read_metadata(root)
    target = str(metadata.get("loader") or "")
    module_name, _, func_name = target.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PackageError(
            f"{root / 'metadata.json'}: loader {target!r} cannot be imported ({exc})"
        ) from None
    return func(root, device)


def load_solver_models(folder: str | Path, device: str = "cpu"):
    """The default loader: rebuild the solver's modules by its ``build_model``, load them.

    Returns:
        The module in eval mode when the package holds one, else ``{name: module}``.

    Raises:
        PackageError: unreadable package or weights that do not fit the rebuilt modules.
    """
    from audioflow.models.package import PackageError, read_config, read_metadata
    from audioflow.solvers.registry import SolverNotFoundError, get_solver_class

    root = Path(folder)
    metadata = read_metadata(root)
    cfg = read_config(root)
    try:
        cls = get_solver_class(str(cfg.get("solver")))
    except SolverNotFoundError as exc:
        raise PackageError(f"{root}: {exc}") from None
    solver = model_only_solver(cls, cfg, device)
    names = list(metadata.get("exports") or [])
    try:
        raw = torch.load(root / "model.th", map_location="cpu", weights_only=True)
        states = {names[0]: raw} if len(names) == 1 else raw
        modules = {n: solver._get(n) for n in names}
        for n, module in modules.items():
            module.load_state_dict(states[n])
    except Exception as exc:  # truncated file, foreign keys, shape mismatch
        raise PackageError(f"{root / 'model.th'}: cannot load the weights ({exc})") from exc
    for module in modules.values():
        module.to(device).eval()
    return next(iter(modules.values())) if len(modules) == 1 else modules
