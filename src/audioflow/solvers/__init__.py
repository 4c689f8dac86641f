"""audioflow.solvers."""
