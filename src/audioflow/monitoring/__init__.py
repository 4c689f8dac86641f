"""audioflow.monitoring."""
