"""audioflow.metrics."""
