"""Solver registry: registered names, dotted paths, clear errors."""

import pytest

from audioflow.solvers import registry
from audioflow.solvers.base import StandardSolver


def test_dotted_and_colon_paths_resolve():
    assert registry.get_solver_class("audioflow.solvers.base.StandardSolver") is StandardSolver
    assert registry.get_solver_class("audioflow.solvers.base:StandardSolver") is StandardSolver


def test_registered_name_and_errors(monkeypatch):
    monkeypatch.setitem(registry.SOLVERS, "std", "audioflow.solvers.base:StandardSolver")
    assert registry.get_solver_class("std") is StandardSolver
    with pytest.raises(registry.SolverNotFoundError, match="solver=nope: not a registered"):
        registry.get_solver_class("nope")
    with pytest.raises(registry.SolverNotFoundError, match="cannot import module no_such_pkg"):
        registry.get_solver_class("no_such_pkg.Solver")
    with pytest.raises(registry.SolverNotFoundError, match="has no class Missing"):
        registry.get_solver_class("audioflow.solvers.base.Missing")
