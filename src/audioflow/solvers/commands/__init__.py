"""CLI sub-commands of audioflow.solvers."""
