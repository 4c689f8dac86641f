"""audioflow.optim."""
